"""Pluggable networks: the default torso follows the observation space, and `train(network=...)`
replaces it without touching the agent; the loaded policy rebuilds the same network."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl.agents import networks, ppo

TINY = dict(total_steps=512, num_envs=4, rollout_len=16, epochs=1, iterations_per_call=4)


@pytest.mark.parametrize(
    "shape, hidden, first_layer",
    [((4,), (32,), "h0"), ((10, 10, 4), (32,), "c0"), ((84, 84, 4), (32,), "c2")],
    ids=["vector-mlp", "small-frames-conv", "atari-frames-nature-cnn"],
)
def test_the_default_torso_follows_the_observation_space(shape, hidden, first_layer):
    torso = networks.torso_for(shape, hidden)
    net = hk.without_apply_rng(hk.transform(lambda x: torso("t")(x)))
    params = net.init(jax.random.key(0), jnp.zeros((1, *shape)))
    assert any(k.endswith(f"/{first_layer}") for k in params), list(params)
    assert net.apply(params, jnp.zeros((3, *shape))).shape == (3, 32)
    assert net.apply(params, jnp.zeros((2, 3, *shape))).shape == (2, 3, 32)  # [T, B, ...]


def test_train_takes_a_network_and_the_policy_uses_it():
    def wide(cfg, obs_shape):
        del cfg, obs_shape
        return networks.mlp((48, 24), jax.nn.relu)

    result = ppo.train(ppo.Config(**TINY), network=wide)
    assert result.params["actor/h0"]["w"].shape == (4, 48)
    assert result.params["critic/h1"]["w"].shape == (48, 24)
    policy = result.policy(network=wide)
    assert policy.act(np.zeros((5, 4))).shape == (5,)
    with pytest.raises(Exception):  # noqa: B017 - the default network does not fit these params
        result.policy().act(np.zeros(4))
