"""Epsilon-greedy exploration for value-based agents, epsilon being a `StatefulSchedule`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from inject_rl.schedules import from_step_schedule
from inject_rl.schedules._constant import as_schedule


def epsilon_schedule(cfg: Any) -> optax.schedules.StatefulSchedule:
    """`cfg.epsilon` as a StatefulSchedule (None: linear decay over `epsilon_fraction` of the
    iterations; a number: constant; an optax step schedule: counted in iterations)."""
    if cfg.epsilon is not None:
        return as_schedule("dqn epsilon", cfg.epsilon)
    n = max(1, round(cfg.epsilon_fraction * cfg.num_iterations))
    return from_step_schedule(optax.linear_schedule(cfg.epsilon_start, cfg.epsilon_end, n))


def epsilon_greedy(net: Any, num_actions: int):
    """`act(view, obs, key) -> (action, {})` for a Q-network `net`: with probability epsilon a
    uniformly random action, else the argmax; `view` is `(params, epsilon)`."""

    def act(view, obs, key):  # view: (params, epsilon)
        params, epsilon = view
        k_explore, k_action = jax.random.split(key)
        greedy = jnp.argmax(net.apply(params, obs), -1).astype(jnp.int32)
        explore = jax.random.uniform(k_explore, greedy.shape) < epsilon
        random = jax.random.randint(k_action, greedy.shape, 0, num_actions, jnp.int32)
        return jnp.where(explore, random, greedy), {}

    return act
