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
    # Jitted, as the agents run it (op by op, the Nature CNN took 20 s of the default suite).
    params = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, *shape)))
    assert any(k.endswith(f"/{first_layer}") for k in params), list(params)
    apply = jax.jit(net.apply)
    assert apply(params, jnp.zeros((3, *shape))).shape == (3, 32)
    assert apply(params, jnp.zeros((2, 3, *shape))).shape == (2, 3, 32)  # [T, B, ...]


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


@pytest.mark.parametrize(
    ("frame", "channels", "kernel", "stride"),
    [((10, 10, 4), 16, 3, 1), ((84, 84, 4), 32, 8, 4), ((20, 20, 32), 64, 4, 2)],
    ids=["minatar", "nature-c0", "nature-c1"],
)
def test_cpu_conv_is_haikus_conv2d(frame, channels, kernel, stride):
    """networks.Conv2D (patches times a matrix on CPU: XLA's CPU convolution is slow in loops)
    has hk.Conv2D's parameters, initial values included, and computes its convolution."""
    x = jax.random.uniform(jax.random.key(1), (3, *frame))

    def ours(x):
        return networks.Conv2D(channels, kernel, stride, name="c")(x)

    def haikus(x):
        return hk.Conv2D(channels, kernel, stride, padding="VALID", name="c")(x)

    a, b = hk.without_apply_rng(hk.transform(ours)), hk.without_apply_rng(hk.transform(haikus))
    pa, pb = a.init(jax.random.key(0), x), b.init(jax.random.key(0), x)
    assert jax.tree.structure(pa) == jax.tree.structure(pb)
    for u, v in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_array_equal(u, v)
    pa = jax.tree.map(lambda p: p + 0.1, pa)  # a nonzero bias too
    ya, yb = a.apply(pa, x), b.apply(pa, x)
    assert ya.shape == yb.shape
    np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=1e-5)


def test_training_steps_on_frames_run_no_xla_convolution_on_cpu():
    """The conv torso's gradient steps inside `lax.scan` compile to dots, not to XLA's CPU
    convolution, which runs several times slower in a loop body (jax-ml/jax#12868)."""
    torso = networks.torso_for((10, 10, 4), hidden=(32,))
    net = hk.without_apply_rng(hk.transform(lambda x: torso("t")(x).sum()))
    x = jnp.zeros((4, 8, 10, 10, 4))
    params = net.init(jax.random.key(0), x[0])

    def train(params, xs):
        def step(p, x):
            g = jax.grad(net.apply)(p, x)
            return jax.tree.map(lambda a, b: a - 1e-3 * b, p, g), None

        return jax.lax.scan(step, params, xs)[0]

    hlo = jax.jit(train).lower(params, x).compile().as_text()
    assert " dot(" in hlo or "dot_fusion" in hlo or "custom-call" in hlo
    assert "convolution(" not in hlo
