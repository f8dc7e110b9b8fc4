"""PPO on the sebulba loop (host envs): contract, determinism, resume, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl import loops
from inject_rl.agents import ppo

TINY = dict(
    env_id="CartPole-v1",
    total_steps=1024,
    num_envs=4,
    rollout_len=16,
    epochs=2,
    num_minibatches=2,
    iterations_per_call=4,
)


def test_smoke_metrics_and_hyperparams():
    cfg = ppo.Config(**TINY)
    res = ppo.train(cfg)
    n = cfg.num_iterations
    for k in (
        "episode_return",
        "episode_count",
        "loss",
        "kl",
        "grad_norm",
        "step",
        "hp/learning_rate",
        "learner_wait_s",
    ):
        assert res.metrics[k].shape == (n,), k
    np.testing.assert_array_equal(res.metrics["step"], np.arange(1, n + 1) * 64)
    assert res.state.actor is None
    assert np.isfinite(ppo.evaluate(res, episodes=2))


def test_deterministic_given_the_seed_on_two_devices():
    cfg = ppo.Config(**TINY, staleness=1)
    a, b = ppo.train(cfg, num_devices=2), ppo.train(cfg, num_devices=2)
    assert loops.replicas_equal(a.state.params)
    np.testing.assert_array_equal(a.metrics["loss"], b.metrics["loss"])
    c = ppo.train(ppo.Config(**{**TINY, "seed": 1}, staleness=1), num_devices=2)
    assert not np.array_equal(a.metrics["loss"], c.metrics["loss"])


def test_resume_continues_the_learner():
    cfg = ppo.Config(**TINY)
    saved = {}

    def keep(i, metrics, state):
        if i == 1:  # a copy: the state is donated to the next call
            saved["state"] = jax.tree.map(jnp.copy, state)

    full = ppo.train(cfg, callback=keep)
    res = ppo.train(cfg, resume=(saved["state"], 2))
    np.testing.assert_array_equal(res.metrics["step"], full.metrics["step"][8:])
    # What --resume promises on host envs, exactly: the learner continues from the checkpointed
    # state (step, params, optimizer and schedule states, keys), but the envs restart from fresh
    # resets, so the rollouts, and with them the losses, differ from the uninterrupted run's.
    assert not np.array_equal(res.metrics["loss"], full.metrics["loss"][8:])
    again = ppo.train(cfg, resume=(saved["state"], 2))
    np.testing.assert_array_equal(res.metrics["loss"], again.metrics["loss"])  # deterministic


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_solves_host_cartpole_within_1e5_steps(seed):
    res = ppo.train(ppo.config_for("CartPole-v1", seed=seed))
    assert int(res.metrics["step"][-1]) <= 100_000 + ppo.Config().steps_per_iteration * 10
    assert ppo.evaluate(res, episodes=20) >= 475


@pytest.mark.slow
def test_acrobot():
    res = ppo.train(ppo.config_for("Acrobot-v1", seed=0))
    assert ppo.evaluate(res, episodes=20) >= -120
