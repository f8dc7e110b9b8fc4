"""The CLI names each run's programs by what config.json says the run is."""

from __future__ import annotations

from inject_rl.cli import _build as _cli_build
from inject_rl.cli import _train as _cli_train


def key(**kw):
    args = dict(
        agent_name="ppo",
        env_id=None,
        steps=1024,
        seed=0,
        devices=None,
        hp={},
        opt=None,
        overrides={"hidden": [8]},
    )
    args.update(kw)
    return _cli_train.program_key(_cli_build.build(**args))


def test_same_run_same_key_and_any_difference_another_key():
    base = key()
    assert key() == base
    others = [
        key(seed=1),  # init bakes the seed
        key(hp={"learning_rate": "kl_target(3e-4, target=0.01)"}),
        key(hp={"learning_rate": "kl_target(1e-3, target=0.01)"}),
        key(overrides={"hidden": [16]}),
        key(opt="sgd"),
        key(agent_name="dqn", overrides={}),
    ]
    assert base not in others and len(set(others)) == len(others)
