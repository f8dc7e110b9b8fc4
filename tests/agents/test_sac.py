"""SAC: both loops, one optimizer update per learner step with every signal, learning."""

import numpy as np
import optax
import pytest

from inject_rl import loops
from inject_rl.agents import sac
from tests.agents._recording import RecordingSchedule

TINY = dict(
    total_steps=256,
    num_envs=2,
    train_every=8,
    gradient_steps=4,
    batch_size=32,
    buffer_size=512,
    learning_starts=64,
    iterations_per_call=4,
    hidden=(16, 16),
)
SIGNALS = {
    "loss",
    "value_loss",
    "entropy",
    "td_error",
    "grad_norm",
    "episode_return",
    "episode_length",
    "episode_count",
    "step",
}


def test_host_smoke_one_update_per_learner_step_with_every_signal():
    sched = RecordingSchedule()
    cfg = sac.Config(**TINY)
    res = sac.train(cfg, optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=sched))
    assert sched.keys_seen == SIGNALS
    learning = res.metrics["step"] >= cfg.learning_starts
    calls = res.opt_state.hyperparams_states["learning_rate"]["calls"]
    assert int(calls) == int(learning.sum()) * cfg.gradient_steps
    for k in SIGNALS | {"alpha", "learner_wait_s"}:
        assert res.metrics[k].shape == (cfg.num_iterations,), k
    assert np.isnan(res.metrics["loss"][~learning]).all()
    assert np.isfinite(res.metrics["loss"][learning]).all() and learning.sum() >= 2
    assert np.isfinite(sac.evaluate(res, episodes=2))


def test_anakin_smoke_hyperparams_and_learned_temperature():
    cfg = sac.config_for("phys2d/Pendulum-v0", **TINY)
    res = sac.train(cfg)
    for k in ("hp/actor/learning_rate", "hp/critic/learning_rate", "hp/alpha/learning_rate"):
        assert res.metrics[k].shape == (cfg.num_iterations,), k
    assert res.metrics["alpha"][-1] != cfg.init_alpha  # the temperature is learned
    assert np.isfinite(sac.evaluate(res, episodes=2))


def test_two_devices_replicas_bitwise_equal():
    res = sac.train(sac.Config(**TINY), num_devices=2)
    assert loops.replicas_equal(res.state.params)
    assert loops.replicas_equal(res.state.opt_state)
    assert loops.replicas_equal(res.state.target_critic)


def test_discrete_actions_are_rejected():
    with pytest.raises(ValueError, match="continuous"):
        sac.train(sac.Config(**{**TINY, "env_id": "CartPole-v1"}))


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(tau=2.0), "tau"),
        (dict(tau=0.0), "tau must be a finite number > 0"),  # frozen target critics
        (dict(learning_starts=-1), "learning_starts"),
        (dict(buffer_size=8), "buffer_size"),
        (dict(actor_lr=0.0), "actor_lr"),
    ],
    ids=["tau", "tau_zero", "learning_starts", "buffer", "lr"],
)
def test_bad_config_is_value_error(changes, match):
    with pytest.raises(ValueError, match=match):
        sac.train(sac.Config(**{**TINY, **changes}))


@pytest.mark.slow
def test_pendulum_within_3e4_steps():
    res = sac.train(sac.Config(seed=0))
    assert int(res.metrics["step"][-1]) <= 30_000 + sac.Config().steps_per_iteration * 50
    assert sac.evaluate(res, episodes=20) >= -250
