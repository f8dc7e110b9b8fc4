"""Run directories: metrics rows, JSON, checkpoints (bitwise, typed keys), plots, progress."""

import io
import json
import struct
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import runs
from inject_rl.optim import injected
from inject_rl.schedules import kl_target


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's signature and IHDR chunk (no PIL needed)."""
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_summarize_call_reductions():
    row = runs.summarize_call(
        {
            "step": np.array([32, 64], np.int32),
            "loss": np.array([1.0, np.nan], np.float32),
            "kl": np.array([np.nan, np.nan], np.float32),
            "episode_return": np.array([np.nan, 20.0], np.float32),
            "episode_count": np.array([0.0, 2.0], np.float32),
            "hp/b1": np.array([0.9, 0.9], np.float32),
        }
    )
    assert row["step"] == 64 and isinstance(row["step"], int)
    assert row["loss"] == 1.0 and np.isnan(row["kl"])
    assert row["episode_return"] == 20.0 and row["episode_count"] == 2.0
    assert row["hp/b1"] == 0.9  # shortest float32 text, not 0.8999999761581421


def test_json_nan_is_null_and_strict(tmp_path):
    w = runs.MetricsWriter(tmp_path / "m.jsonl", [{"step": 1, "x": float("nan")}])
    w.write({"step": 2, "x": np.float32(np.inf), "y": np.int64(3)})
    w.close()
    text = (tmp_path / "m.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"step": 3, "x"')  # a writer killed mid-line
    assert runs.read_metrics(tmp_path / "m.jsonl") == [
        {"step": 1, "x": None},
        {"step": 2, "x": None, "y": 3},
    ]
    runs.write_json(tmp_path / "c.json", {"a": (1, 2), "b": np.nan})
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": [1, 2], "b": None}
    assert runs.read_json(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        runs.read_json(tmp_path / "bad.json")


class State(NamedTuple):
    params: dict
    opt_state: object
    key: jax.Array
    step: jax.Array


def _state(seed: int, n: int = 2) -> State:
    params = {"w": jnp.arange(6.0).reshape(2, 3) * seed, "b": jnp.zeros(3)}
    opt = injected(optax.adam, learning_rate=kl_target(1e-3))
    one = State(params, opt.init(params), jax.random.key(seed), jnp.asarray(seed, jnp.int32))
    return jax.tree.map(lambda x: jnp.stack([x] * n), one)


def test_checkpoint_round_trip_bitwise_with_typed_keys(tmp_path):
    state = _state(3)
    ckpt = runs.Checkpointer(tmp_path / "ck")
    assert ckpt.latest_step() is None and not (tmp_path / "ck").exists()  # nothing created
    ckpt.save(1, _state(1), {"next_call": 1})
    ckpt.save(5, state, {"next_call": 5, "rows": [{"step": 5, "x": None}]})
    ckpt.close()

    again = runs.Checkpointer(tmp_path / "ck")
    assert again.latest_step() == 5
    like = jax.eval_shape(lambda: _state(0))
    restored, meta = again.restore(5, like)
    assert meta["next_call"] == 5 and meta["rows"] == [{"step": 5, "x": None}]
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    leaves, _ = again.restore_leaves(5)
    assert ".key" in leaves and leaves[".key"].dtype == np.uint32


def test_checkpoint_mismatch_is_a_value_error(tmp_path):
    ckpt = runs.Checkpointer(tmp_path / "ck")
    ckpt.save(1, _state(1), {"next_call": 1})
    with pytest.raises(ValueError, match="different state structure"):
        ckpt.restore(1, jax.eval_shape(lambda: {"other": jnp.zeros(2)}))
    with pytest.raises(ValueError, match="this run expects"):
        ckpt.restore(1, jax.eval_shape(lambda: _state(0, n=3)))


def test_params_round_trip(tmp_path):
    params = {"actor/h0": {"w": np.ones((2, 3), np.float32)}, "critic/out": {"b": np.zeros(1)}}
    runs.save_params(tmp_path / "p", params)
    out = runs.load_params(tmp_path / "p")
    np.testing.assert_array_equal(out["actor/h0"]["w"], params["actor/h0"]["w"])
    with pytest.raises(ValueError, match="no final params"):
        runs.load_params(tmp_path / "nope")


def _fake_run(directory, lr_values):
    directory.mkdir()
    w = runs.MetricsWriter(directory / runs.METRICS)
    for i, lr in enumerate(lr_values):
        ret = None if i == 0 else 10.0 * i
        w.write({"step": 32 * (i + 1), "episode_return": ret, "hp/learning_rate": lr, "hp/b1": 0.9})
    w.close()


def test_plot_overlays_runs_png(tmp_path):
    _fake_run(tmp_path / "a", [1e-3, 5e-4, 1e-5])
    _fake_run(tmp_path / "b", [1e-3, 1e-3, 1e-3])
    out = runs.plot_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "sub" / "p.png")
    width, height = png_size(out)
    # Two panels (return, learning_rate); b1 = 0.9 is constant: it goes to the caption.
    assert width == 800 and 2 * 260 < height < 3 * 260
    with pytest.raises(ValueError, match="has no metrics.jsonl"):
        runs.plot_runs([tmp_path / "sub"], tmp_path / "q.png")


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


class _ClosedPipe(io.StringIO):
    def isatty(self):
        return False

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_progress_stops_printing_when_its_reader_goes_away():
    # `inject-rl train | head -1`: the BrokenPipeError ended the run with no checkpoint.
    p = runs.Progress(64, _ClosedPipe())
    p.update({"step": 32, "episode_return": None})
    p.update({"step": 64, "episode_return": 1.0})
    p.close()
    assert p.stream is None


def test_json_files_get_the_permissions_open_gives(tmp_path):
    # mkstemp made config.json and summary.json 0600, unlike the run's other files.
    runs.write_json(tmp_path / "c.json", {"a": 1})
    (tmp_path / "plain.txt").write_text("x")
    mode = (tmp_path / "c.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("tty", [True, False], ids=["tty", "pipe"])
def test_progress_refreshes_in_place_only_on_a_tty(tty):
    stream = _Stream(tty)
    p = runs.Progress(64, stream)
    p.update({"step": 32, "episode_return": None, "hp/learning_rate": 1e-3})
    p.update({"step": 64, "episode_return": 21.5, "hp/learning_rate": 5e-4})
    p.close()
    text = stream.getvalue()
    assert "step 64/64 (100%)" in text and "return 21.5" in text and "lr 5.00e-04" in text
    if tty:
        assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    else:
        assert "\r" not in text and len(text.splitlines()) == 2
