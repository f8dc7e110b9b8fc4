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


def experience(traj: loops.Transition, gamma: float, n_step: int = 1) -> Experience:
    """A rollout `[T, B]` as `T * B` transitions; `discount = gamma * (1 - terminated)`, so a
    time-limit truncation still bootstraps from the true next observation.

    With `n_step > 1` each transition carries the n-step return instead (Sutton 1988; Rainbow,
    Hessel et al. 2018): `reward = sum_{j<k} gamma^j r_{t+j}`, `discount = gamma^k (1 -
    terminated)` and `next_obs` the observation reached after `k` steps, where `k <= n_step`
    stops at the episode's end (termination: no bootstrap; truncation: bootstrap from the true
    final observation) and at the end of the rollout (the last steps of each rollout get fewer
    than `n_step` rewards, so no transition waits for the next rollout).

    >>> import numpy as np
    >>> traj = loops.Transition(
    ...     obs=jnp.zeros((3, 1, 1)), action=jnp.zeros((3, 1), jnp.int32),
    ...     reward=jnp.ones((3, 1)), terminated=jnp.array([[False], [True], [False]]),
    ...     truncated=jnp.zeros((3, 1), bool), next_obs=jnp.arange(3.0).reshape(3, 1, 1),
    ...     extras={})
    >>> e = experience(traj, 0.5, n_step=3)
    >>> e.reward.tolist(), e.discount.tolist(), e.next_obs[:, 0].tolist()
    ([1.5, 1.0, 1.0], [0.0, 0.0, 0.5], [1.0, 1.0, 2.0])
    """
    if n_step == 1:
        reward, discount, next_obs = (
            traj.reward,
            gamma * (1.0 - traj.terminated.astype(jnp.float32)),
            traj.next_obs,
        )
    else:
        reward, discount, next_obs = _n_step(traj, gamma, n_step)
    new = Experience(traj.obs, traj.action, reward, discount, next_obs)
    return jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), new)


def _n_step(traj: loops.Transition, gamma: float, n_step: int):
    """`(reward, discount, next_obs)` `[T, B, ...]` of n-step transitions (`experience`)."""
    if n_step < 1:
        raise ValueError(f"n_step must be >= 1, got {n_step=}")
    num_steps = traj.reward.shape[0]

    def ahead(x, k):  # x[t + k] at t, zeros past the rollout's end
        return jnp.concatenate([x[k:], jnp.zeros_like(x[:k])]) if k else x

    def expand(mask, like):  # [T, B] -> broadcastable against `like` [T, B, ...]
        return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))

    terminated = traj.terminated.astype(jnp.float32)
    ended = traj.terminated | traj.truncated
    reward = jnp.zeros_like(traj.reward)
    discount = jnp.ones_like(traj.reward)  # gamma^k (1 - terminated) so far
    next_obs = traj.next_obs
    live = jnp.ones(traj.reward.shape, bool)  # the episode has not ended before step t + k
    for k in range(min(n_step, num_steps)):
        use = live & (jnp.arange(num_steps) + k < num_steps)[:, None]
        reward = jnp.where(use, reward + discount * ahead(traj.reward, k), reward)
        discount = jnp.where(use, discount * gamma * (1.0 - ahead(terminated, k)), discount)
        next_obs = jnp.where(expand(use, next_obs), ahead(traj.next_obs, k), next_obs)
        live = use & ~ahead(ended, k)
    return reward, discount, next_obs


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
