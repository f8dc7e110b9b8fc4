"""DQN's host CartPole-v1 preset (issue 13): LayerNorm, 3-step returns, a time-annealed
learning rate, and a final policy that solves the task without best-params keeping."""

import haiku as hk
import jax
import numpy as np
import pytest

from inject_rl.agents import dqn
from tests.agents.test_dqn import TINY


@pytest.mark.slow
def test_preset_settings_reach_the_learner_and_the_policy():
    cfg = dqn.config_for("CartPole-v1", **{**TINY, "eval_every": 0})
    assert (cfg.n_step, cfg.layer_norm, cfg.lr_anneal_steps) == (3, True, 100_000)
    res = dqn.train(cfg)
    names = set(res.params)
    assert {"q/ln0", "q/ln1"} <= names  # LayerNorm before each hidden activation
    assert int(res.state.updates[0]) == cfg.num_updates  # all within lr_anneal_steps: the
    n = cfg.updates_within(cfg.lr_anneal_steps)  # tiny run ends early in the decay
    last = cfg.lr_init * (cfg.lr_final / cfg.lr_init) ** ((cfg.num_updates - 1) / n)
    np.testing.assert_allclose(res.metrics["hp/learning_rate"][-1], last, rtol=1e-5)
    assert dqn.config_for("CartPole-v1").validate().updates_within(100_000) == 49_600
    final = jax.tree.leaves(res.state.params)
    assert all(
        np.array_equal(a, b[0]) for a, b in zip(jax.tree.leaves(res.params), final, strict=True)
    )  # the final params, not the best evaluated ones
    assert res.policy().act(np.zeros((3, 4))).shape == (3,)
    assert np.isfinite(dqn.evaluate(res, episodes=2))


@pytest.mark.slow
def test_layer_norm_leaves_image_torsos_alone():
    torso = dqn.network(dqn.Config(layer_norm=True), (12, 12, 3))
    net = hk.transform(lambda x: torso("q")(x))
    names = set(net.init(jax.random.key(0), np.zeros((1, 12, 12, 3), np.float32)))
    assert "q/c0" in names and not any("ln" in n for n in names)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_solves_host_cartpole_with_its_final_params(seed):
    """About 45 s per seed on 2 CPU cores (scripts/dqn_host.py prints the same figure)."""
    cfg = dqn.config_for("CartPole-v1", seed=seed)
    res = dqn.train(cfg)
    assert int(res.metrics["step"][-1]) == 100_000
    assert cfg.eval_every == 0 and "eval_return" not in res.metrics  # no evaluation steps
    assert dqn.evaluate(res, episodes=20, seed=1000 + seed) >= 475


def test_the_host_learner_updates_its_replay_in_place():
    """The host loop donates the learner state: the replay buffer is written in place, not
    copied whole on every call (a 1e5-transition replay of 10x10x4 frames made DQN 8x slower
    than a 1e4 one before). The callback's state of one call is consumed by the next."""
    kept = []

    def keep(i, metrics, state):
        kept.append(jax.tree.leaves(state.replay.data)[0])

    cfg = dqn.Config(**{**TINY, "env_id": "CartPole-v1", "eval_every": 0})
    res = dqn.train(cfg, callback=keep)
    assert len(kept) == cfg.num_calls > 1
    assert all(x.is_deleted() for x in kept[:-1]) and not kept[-1].is_deleted()
    assert int(res.state.replay.size[0]) == cfg.buffer_size  # it kept filling
