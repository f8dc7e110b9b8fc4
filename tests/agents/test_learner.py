"""The one learner step every agent trains through (inject_rl.agents._learner), tested once:
gradients and signals averaged over devices in one all-reduce, episode statistics gated to the
first step on a batch, every signal reaching `opt.update`, the update applied."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import loops
from inject_rl.agents import learner_step
from inject_rl.signals import SIGNAL_NAMES

SIGNALS = ("loss", "kl")  # what the toy loss reports; "spread" is a metric, not a signal


def loss_fn(params, x):
    err = x @ params["w"] - 1.0
    loss = jnp.mean(err**2)
    return loss, {"loss": loss, "kl": jnp.mean(x), "spread": jnp.std(x)}


def recording_sgd(lr=0.1) -> optax.GradientTransformationExtraArgs:
    """SGD whose state keeps the extra_args of its last update."""
    keys = sorted({*SIGNALS, "grad_norm", "episode_return", "episode_length", "episode_count"})
    keys.append("step")

    def init(params):
        del params
        return {k: jnp.zeros((), jnp.float32) for k in keys}

    def update(updates, state, params=None, **extra):
        assert set(extra) == set(keys), sorted(extra)  # every signal, nothing else
        new = {k: jnp.asarray(extra[k], jnp.float32) for k in keys}
        return jax.tree.map(lambda g: -lr * g, updates), new

    return optax.GradientTransformationExtraArgs(init, update)


EPISODES = {
    "episode_return": jnp.float32(20.0),
    "episode_length": jnp.float32(20.0),
    "episode_count": jnp.float32(3.0),
}


@pytest.mark.parametrize("first", [True, False], ids=["first", "later"])
def test_one_device_step(first):
    params = {"w": jnp.ones((3,), jnp.float32)}
    opt = recording_sgd()
    x = jnp.arange(12.0).reshape(4, 3) / 10
    new, state, metrics = jax.jit(
        lambda p, s, x: learner_step(
            loss_fn, opt, p, s, x, episodes=EPISODES, first=first, step=64, axis_name=None
        )
    )(params, opt.init(params), x)
    grads, aux = jax.grad(loss_fn, has_aux=True)(params, x)
    np.testing.assert_allclose(new["w"], params["w"] - 0.1 * grads["w"], rtol=1e-6)
    assert float(state["episode_count"]) == (3.0 if first else 0.0)  # gated after the first
    assert float(state["episode_return"]) == 20.0 and float(state["step"]) == 64
    np.testing.assert_allclose(state["grad_norm"], optax.tree.norm(grads), rtol=1e-6)
    np.testing.assert_allclose(state["loss"], aux["loss"], rtol=1e-6)
    assert set(metrics) == {"loss", "kl", "spread", "grad_norm"}
    assert set(SIGNALS) <= set(SIGNAL_NAMES) and "spread" not in SIGNAL_NAMES


def _pmapped(opt):
    def step(p, s, x):
        return learner_step(
            loss_fn, opt, p, s, x, episodes=EPISODES, first=True, step=64, axis_name="d"
        )

    return jax.pmap(step, axis_name="d", devices=jax.local_devices()[:2])


def test_two_devices_average_gradients_and_signals_and_stay_identical():
    params = {"w": jnp.ones((3,), jnp.float32)}
    opt = recording_sgd()
    xs = jnp.stack([jnp.arange(12.0).reshape(4, 3) / 10, -jnp.ones((4, 3))])  # differ per device
    rep = jax.tree.map(lambda a: jnp.stack([a, a]), (params, opt.init(params)))
    new, state, metrics = _pmapped(opt)(*rep, xs)
    assert loops.replicas_equal((new, state, metrics))
    grads = [jax.grad(loss_fn, has_aux=True)(params, x) for x in xs]
    mean_g = (grads[0][0]["w"] + grads[1][0]["w"]) / 2
    np.testing.assert_allclose(new["w"][0], params["w"] - 0.1 * mean_g, rtol=1e-6)
    np.testing.assert_allclose(state["kl"][0], (grads[0][1]["kl"] + grads[1][1]["kl"]) / 2)
    np.testing.assert_allclose(metrics["spread"][0], (np.std(xs[0]) + np.std(xs[1])) / 2, 1e-6)


def test_a_step_issues_one_all_reduce():
    """Gradients and the loss's signals are packed into one buffer: one all-reduce per gradient
    step in the lowered program (issue 16 item 1; the compiled count is reported by
    scripts/bench_anakin.py's collectives line on the machine at hand)."""
    params = {"w": jnp.ones((3,)), "b": {"c": jnp.ones((2, 2))}}

    def loss(p, x):
        value = jnp.mean((x @ p["w"]) ** 2) + jnp.sum(p["b"]["c"])
        return value, {"loss": value, "kl": jnp.mean(x), "entropy": jnp.std(x)}

    opt = optax.with_extra_args_support(optax.adam(1e-3))

    def step(p, s, x):
        return learner_step(
            loss, opt, p, s, x, episodes=EPISODES, first=True, step=1, axis_name="d"
        )

    rep = jax.tree.map(lambda a: jnp.stack([a, a]), (params, opt.init(params)))
    lowered = jax.pmap(step, axis_name="d", devices=jax.local_devices()[:2]).lower(
        *rep, jnp.ones((2, 4, 3))
    )
    text = lowered.as_text()
    assert len(re.findall(r"all_reduce", text)) == 1, re.findall(r"\w*all_reduce\w*", text)
