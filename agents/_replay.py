"""What the replay agents (DQN, SAC) share: the replayed transition, the replay buffer's first
state, and learning gated on `learning_starts`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from inject_rl import loops
from inject_rl.loops import ReplayBuffer


class Experience(NamedTuple):
    """One replayed transition (no batch axis in the buffer's item; `[N]` in a batch)."""

    obs: jax.Array  # [*obs] float32
    action: jax.Array  # [] int32 (discrete) or [D] float32 (within the env's bounds)
    reward: jax.Array  # [] float32
    discount: jax.Array  # [] float32: gamma * (1 - terminated); truncation bootstraps
    next_obs: jax.Array  # [*obs] float32: true next observation, before autoreset


def experience(traj: loops.Transition, gamma: float) -> Experience:
    """A rollout `[T, B]` as `T * B` transitions; `discount = gamma * (1 - terminated)`, so a
    time-limit truncation still bootstraps from the true next observation."""
    new = Experience(
        traj.obs,
        traj.action,
        traj.reward,
        gamma * (1.0 - traj.terminated.astype(jnp.float32)),
        traj.next_obs,
    )
    return jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), new)


def init_replay(env: Any, capacity: int) -> loops.ReplayBufferState:
    """An empty buffer of `capacity` transitions of `env`'s spaces."""
    action = jnp.zeros((), jnp.int32) if env.discrete else jnp.zeros(env.action_shape)
    obs = jnp.zeros(env.obs_shape)
    return ReplayBuffer.init(Experience(obs, action, jnp.zeros(()), jnp.zeros(()), obs), capacity)


def after_learning_starts(
    learning_starts: int,
    learn: Callable[[Any], tuple[Any, dict[str, jax.Array]]],
    idle: dict[str, Callable[[Any], jax.Array]],
) -> Callable[[Any], tuple[Any, dict[str, jax.Array]]]:
    """`state -> (state, metrics)`: `learn` once `state.step >= learning_starts`, else the state
    unchanged with NaN for every metric of `idle` but those it computes (`name -> fn(state)`,
    None for NaN). The predicate is identical on every device, so collectives match."""

    def skip(state):
        nan = jnp.full((), jnp.nan, jnp.float32)
        return state, {k: nan if fn is None else fn(state) for k, fn in idle.items()}

    return lambda state: jax.lax.cond(state.step >= learning_starts, learn, skip, state)


def check_buffer(cfg: Any) -> None:
    """A replay agent's buffer must hold one iteration's env steps."""
    if cfg.steps_per_iteration > cfg.buffer_size:
        name = type(cfg).__module__.rsplit(".", 1)[-1]
        raise ValueError(
            f"{name}: buffer_size must hold one iteration (num_envs * train_every = "
            f"{cfg.steps_per_iteration}), got buffer_size={cfg.buffer_size}"
        )
