"""When `inject-rl train` checkpoints: by env steps when asked, else by wall time, always last."""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import pytest

from inject_rl.cli import _train as _cli_train


def built(num_calls: int):
    cfg = SimpleNamespace(num_calls=num_calls, steps_per_iteration=16, iterations_per_call=2)
    return SimpleNamespace(cfg=cfg, record={"agent": "ppo"})


def saved_calls(tmp_path, monkeypatch, num_calls, checkpoint_every, seconds):
    monkeypatch.setattr(_cli_train, "CHECKPOINT_SECONDS", seconds)
    b = built(num_calls)
    run = _cli_train._Run(
        b, tmp_path / "run", None, _cli_train.every_calls(b.cfg, checkpoint_every), quiet=True
    )
    saves = []
    state = {"w": jnp.ones(3)}
    try:
        for call in range(num_calls):
            if call == 0:
                run.start()
                monkeypatch.setattr(run.ckpt, "save", lambda step, *_: saves.append(step))
            run(call, {"step": jnp.array([32 * (call + 1)])}, state)
    finally:
        run.close()
    return saves


def test_default_saves_only_at_the_end_of_a_short_run(tmp_path, monkeypatch):
    assert saved_calls(tmp_path, monkeypatch, 6, None, seconds=3600.0) == [6]


def test_default_saves_whenever_the_interval_has_passed(tmp_path, monkeypatch):
    assert saved_calls(tmp_path, monkeypatch, 4, None, seconds=0.0) == [1, 2, 3, 4]


@pytest.mark.parametrize("every, expected", [(64, [2, 4, 6, 7]), (32, [1, 2, 3, 4, 5, 6, 7])])
def test_checkpoint_every_counts_env_steps(tmp_path, monkeypatch, every, expected):
    # 32 env steps per call: every 64 steps is every 2nd call, plus the last call.
    assert saved_calls(tmp_path, monkeypatch, 7, every, seconds=0.0) == expected
