"""Issue 12 item 7: a run whose loss or parameters turn non-finite never succeeds silently.

The compiled step reports `diverged`; `train` raises `Diverged` at the first host call that
shows it, before the callback (so the CLI never checkpoints a diverged state); the CLI exits 3
with one line, writes no summary or eval return, and keeps the last finite checkpoint.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import runs
from inject_rl.agents import Diverged, ppo
from inject_rl.cli import _build, main
from inject_rl.cli import _train as cli_train

TINY = dict(num_envs=2, rollout_len=8, epochs=1, num_minibatches=1, iterations_per_call=2)
TINY_CFG = ppo.Config(total_steps=32 * 6, hidden=(8,), **TINY)  # 6 host calls of 32 steps


def nan_after(updates: int) -> optax.GradientTransformationExtraArgs:
    """Passes updates through, then makes them NaN from update number `updates` on."""

    def init(params):
        del params
        return jnp.zeros((), jnp.int32)

    def update(u, count, params=None, **extra):
        del params, extra
        bad = count >= updates
        return jax.tree.map(lambda x: jnp.where(bad, jnp.nan, x), u), count + 1

    return optax.GradientTransformationExtraArgs(init, update)


def test_the_step_reports_divergence_and_train_raises_before_the_callback():
    seen = []
    opt = optax.chain(ppo.default_optimizer(TINY_CFG), nan_after(5))  # 2 updates per call
    with pytest.raises(Diverged, match=r"diverged .* by env step 96, in host call 2"):
        ppo.train(TINY_CFG, optimizer=opt, callback=lambda call, m, s: seen.append(m))
    assert len(seen) == 2  # calls 0 and 1; the diverged call 2 never reached the callback
    assert all(float(np.max(m["diverged"])) == 0.0 for m in seen)
    # A healthy run reports 0 on every iteration.
    result = ppo.train(TINY_CFG)
    assert result.metrics["diverged"].shape == result.metrics["step"].shape
    assert not result.metrics["diverged"].any()


def test_a_huge_learning_rate_exits_3_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "hidden": [8]}))
    args = ["train", "--out", str(out), "--config", str(config), "--steps", "192", "--quiet"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--hp", "learning_rate=1e30"])
    assert exit_info.value.code == cli_train.EXIT_DIVERGED == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged" in err[0] and "nothing written" in err[0]
    assert not out.exists()


def test_a_run_that_diverges_later_keeps_its_last_finite_checkpoint(tmp_path, capsys):
    built = _build.build(
        agent_name="ppo",
        env_id=None,
        steps=32 * 6,
        seed=0,
        devices=None,
        hp={},
        opt=None,
        overrides={**TINY, "hidden": [8]},
    )
    built = dataclasses.replace(
        built,
        optimizer=optax.chain(built.optimizer, nan_after(9)),  # diverges in call 4
    )
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli_train.train(built, out, resume=False, checkpoint_every=32, eval_episodes=1, quiet=True)
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "keeps the last finite checkpoint (4)" in err
    assert not (out / runs.SUMMARY).exists() and not (out / runs.PARAMS).exists()
    ckpt = runs.Checkpointer(out / runs.CHECKPOINTS)
    try:
        assert ckpt.latest_step() == 4  # calls 0-3 were checkpointed, call 4 diverged
    finally:
        ckpt.close()
    rows = runs.read_metrics(out / runs.METRICS)
    assert [r["step"] for r in rows] == [32, 64, 96, 128]
    assert all(r["diverged"] == 0 for r in rows)
