"""Issue 12: a damaged latest checkpoint falls back to the newest intact one (inject_rl.runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl import runs


def _state(seed: int) -> dict:
    # Random floats: incompressible, so their bytes sit in the data file as written and one
    # flipped bit changes a value (compressed or indexed bytes would fail to decode instead).
    w = np.random.default_rng(seed).standard_normal(4096).astype(np.float32)
    return {"w": jnp.asarray(w), "key": jax.random.key(seed), "step": jnp.int32(seed)}


LIKE = jax.eval_shape(lambda: _state(0))


def _largest_file(d: Path) -> Path:
    return max((p for p in d.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _flip_bit(d: Path) -> None:
    f = _largest_file(d)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))


def _truncate(d: Path) -> None:
    f = _largest_file(d)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _random_bytes(d: Path) -> None:
    for f in d.rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(np.random.default_rng(0).bytes(f.stat().st_size))


# damage -> what it does to checkpoint 2 (the latest).
DAMAGE = {
    "flipped_bit_in_state": lambda ck: _flip_bit(ck / "2" / "state"),
    "truncated_state": lambda ck: _truncate(ck / "2" / "state"),
    "random_bytes_in_state": lambda ck: _random_bytes(ck / "2" / "state"),
    "meta_deleted": lambda ck: shutil.rmtree(ck / "2" / "meta"),
    "state_deleted": lambda ck: shutil.rmtree(ck / "2" / "state"),
    "flipped_bit_in_meta": lambda ck: _flip_bit(ck / "2" / "meta"),
    "everything_emptied": lambda ck: [
        f.write_bytes(b"") for f in (ck / "2").rglob("*") if f.is_file()
    ],
}


@pytest.fixture
def two_checkpoints(tmp_path) -> Path:
    ckpt = runs.Checkpointer(tmp_path / "ck")
    ckpt.save(1, _state(1), {"next_call": 1})
    ckpt.save(2, _state(2), {"next_call": 2})
    ckpt.close()
    return tmp_path / "ck"


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(two_checkpoints, damage):
    DAMAGE[damage](two_checkpoints)
    ckpt = runs.Checkpointer(two_checkpoints)
    step, state, meta, skipped = ckpt.restore_newest(LIKE)
    assert step == 1 and meta == {"next_call": 1}
    assert len(skipped) == 1 and f"{two_checkpoints}/2" in skipped[0]
    assert len(skipped[0]) < 300  # a line for a warning, not tensorstore's 1.5 kB
    np.testing.assert_array_equal(np.asarray(state["w"]), np.asarray(_state(1)["w"]))
    assert ckpt.discard_after(step) == [2] and ckpt.all_steps() == [1]
    ckpt.save(2, _state(3), {"next_call": 2})  # the resumed run writes step 2 again
    ckpt.close()
    assert runs.Checkpointer(two_checkpoints).restore_newest(LIKE)[0] == 2


def test_a_flipped_bit_that_orbax_reads_back_is_caught_by_the_checksum(two_checkpoints):
    _flip_bit(two_checkpoints / "2" / "state")
    ckpt = runs.Checkpointer(two_checkpoints)
    with pytest.raises(runs.CorruptCheckpoint, match="checksum mismatch"):
        ckpt.restore(2, LIKE)
    with pytest.raises(runs.CorruptCheckpoint, match="checksum mismatch"):
        ckpt.restore_leaves(2)
    ckpt.close()


def test_an_intact_checkpoint_restores_without_warnings(two_checkpoints):
    step, state, meta, skipped = runs.Checkpointer(two_checkpoints).restore_newest(LIKE)
    assert (step, meta, skipped) == (2, {"next_call": 2}, [])


def test_no_intact_checkpoint_is_one_value_error(two_checkpoints):
    DAMAGE["meta_deleted"](two_checkpoints)
    shutil.rmtree(two_checkpoints / "1" / "state")
    with pytest.raises(ValueError, match="no intact checkpoint") as e:
        runs.Checkpointer(two_checkpoints).restore_newest(LIKE)
    assert "/1: unreadable arrays" in str(e.value) and "/2: unreadable meta" in str(e.value)
    with pytest.raises(ValueError, match="no checkpoint in"):
        runs.Checkpointer(two_checkpoints.parent / "none").restore_newest(LIKE)


def test_another_run_is_a_structure_error_not_a_fallback(two_checkpoints):
    with pytest.raises(ValueError, match="different state structure"):
        runs.Checkpointer(two_checkpoints).restore_newest({"other": LIKE["w"]})
