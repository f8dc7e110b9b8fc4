"""IMPALA: both loops, signals reaching a user's schedule, learning on host envs.

Replicas across devices and processes: tests/loops/test_distributed.py trains IMPALA there.
"""

import numpy as np
import optax
import pytest

from inject_rl import optim
from inject_rl.agents import impala
from tests.agents._recording import RecordingSchedule

TINY = dict(total_steps=256, num_envs=4, rollout_len=8, iterations_per_call=4)
SIGNALS = {
    "kl",
    "entropy",
    "loss",
    "value_loss",
    "grad_norm",
    "episode_return",
    "episode_length",
    "episode_count",
    "step",
}


def test_host_smoke_with_a_user_schedule_receiving_every_signal():
    sched = RecordingSchedule()
    cfg = impala.Config(**TINY)
    opt = optax.chain(
        optax.inject_hyperparams(optax.adam)(learning_rate=sched), optim.carried(ent_coef=0.01)
    )
    res = impala.train(cfg, optimizer=opt)
    assert sched.keys_seen == SIGNALS
    calls = res.opt_state[0].hyperparams_states["learning_rate"]["calls"]
    assert int(calls) == cfg.num_iterations  # one update per learner step
    n = cfg.num_iterations
    for k in SIGNALS | {"hp/learning_rate", "hp/ent_coef", "learner_wait_s"}:
        assert res.metrics[k].shape == (n,), k
    np.testing.assert_array_equal(res.metrics["step"], np.arange(1, n + 1) * 32)
    assert np.isfinite(res.metrics["loss"]).all() and res.state.actor is None
    assert np.isfinite(impala.evaluate(res, episodes=2))


def test_anakin_smoke_with_the_default_optimizer():
    cfg = impala.config_for("phys2d/CartPole-v1", **TINY)
    res = impala.train(cfg)
    assert res.metrics["hp/learning_rate"].shape == (cfg.num_iterations,)
    assert np.isfinite(res.metrics["loss"]).all() and "learner_wait_s" not in res.metrics
    assert np.isfinite(impala.evaluate(res, episodes=2))


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(num_envs=0), "num_envs"),
        (dict(vtrace_lambda=1.5), "vtrace_lambda"),
        (dict(staleness=-1), "staleness"),
        (dict(ent_coef=-0.1), "ent_coef"),
        (dict(lr_return_low=600.0), "lr_return_low"),
    ],
    ids=["num_envs", "lambda", "staleness", "ent_coef", "lr_range"],
)
def test_bad_config_is_value_error(changes, match):
    with pytest.raises(ValueError, match=match):
        impala.train(impala.Config(**{**TINY, **changes}))


@pytest.mark.slow
def test_solves_host_cartpole_within_3e5_steps_for_2_of_3_seeds():
    evals = []
    for seed in (0, 1, 2):
        res = impala.train(impala.Config(seed=seed))
        assert int(res.metrics["step"][-1]) <= 300_000 + impala.Config().steps_per_iteration * 10
        evals.append(impala.evaluate(res, episodes=20))
    assert sum(e >= 475 for e in evals) >= 2, evals
