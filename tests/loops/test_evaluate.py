"""Greedy evaluation: every episode's return, and the mean the agents report."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl import envs, loops


def _push_right(obs):
    return jnp.ones(obs.shape[0], jnp.int32)


def test_in_graph_returns_are_the_episodes_of_the_mean():
    env = envs.make("phys2d/CartPole-v1")
    key = jax.random.key(3)
    returns = jax.jit(lambda k: loops.evaluate_policy_returns(env, _push_right, 5, k))(key)
    mean = jax.jit(lambda k: loops.evaluate_policy(env, _push_right, 5, k))(key)
    assert returns.shape == (5,) and returns.dtype == jnp.float32
    # Always pushing right ends CartPole within a few dozen steps, at different lengths.
    assert np.all((returns >= 5) & (returns < 100)) and len(set(np.asarray(returns))) > 1
    assert np.asarray(mean).tobytes() == np.asarray(returns.mean()).tobytes()


def test_host_returns_are_the_episodes_of_the_mean():
    def policy(obs):
        return np.ones(len(obs), np.int32)

    returns = loops.evaluate_host_policy_returns("CartPole-v1", policy, 4, 7)
    assert returns.shape == (4,) and returns.dtype == np.float64
    assert np.all((returns >= 5) & (returns < 100))
    assert loops.evaluate_host_policy("CartPole-v1", policy, 4, 7) == float(returns.mean())


def test_a_host_env_without_a_time_limit_is_evaluated_until_its_episodes_end(monkeypatch):
    # A CLI run on Blackjack-v1 trained to the end, then failed: "evaluation needs a time limit".
    from inject_rl.loops import _host_eval

    stick = lambda obs: np.zeros(4, np.int64)  # noqa: E731 - every hand ends at once
    ret = _host_eval.evaluate_host_policy_returns("Blackjack-v1", stick, 4, 0)
    assert set(ret.tolist()) <= {-1.0, 0.0, 1.0, 1.5}
    monkeypatch.setattr(_host_eval, "UNLIMITED_EVAL_STEPS", 0)  # episodes that never end
    with pytest.raises(ValueError, match="4 of 4 evaluation episodes did not end within 0 steps"):
        _host_eval.evaluate_host_policy_returns("Blackjack-v1", stick, 4, 0)
