"""Jittable episode statistics over a batch of environments."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp


class EpisodeStatsState(NamedTuple):
    """Running episodes of each env plus sums over episodes finished in the current window."""

    running_return: jax.Array  # shape=(num_envs,), dtype=float32
    running_length: jax.Array  # shape=(num_envs,), dtype=int32
    # Over the episodes finished in the window: [return sum, length sum, count]. One array, so
    # that a step adds to it in one kernel, not three (issue 16: acting runs every env step).
    # The count is exact up to 2**24 episodes per window.
    window: jax.Array  # shape=(3,), dtype=float32


class EpisodeStats:
    """Accumulates returns and lengths of the episodes that finish in a window of steps.

    All methods are pure and jittable; the state is a fixed-shape pytree (a `lax.scan` carry).
    A window is whatever lies between two `new_window` calls, e.g. one rollout.

    >>> import jax.numpy as jnp
    >>> stats = EpisodeStats.init(2)
    >>> stats = EpisodeStats.update(stats, jnp.array([1.0, 1.0]), jnp.array([False, False]))
    >>> stats = EpisodeStats.update(stats, jnp.array([1.0, 1.0]), jnp.array([True, False]))
    >>> {k: float(v) for k, v in EpisodeStats.summary(stats).items()}
    {'episode_return': 2.0, 'episode_length': 2.0, 'episode_count': 1.0}
    """

    @staticmethod
    def init(num_envs: int) -> EpisodeStatsState:
        """Empty statistics for `num_envs` environments."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs=!r}")
        return EpisodeStatsState(
            running_return=jnp.zeros((num_envs,), jnp.float32),
            running_length=jnp.zeros((num_envs,), jnp.int32),
            window=jnp.zeros((3,), jnp.float32),
        )

    @staticmethod
    def update(stats: EpisodeStatsState, rewards: jax.Array, dones: jax.Array) -> EpisodeStatsState:
        """Adds one step (`[num_envs]`) or a rollout (`[T, num_envs]`) of rewards and dones.

        Args:
          stats: current statistics.
          rewards: reward of each env's step, shape `[num_envs]` or `[T, num_envs]`.
          dones: whether that step ended the episode (terminated or truncated), same shape.

        Returns:
          The statistics with finished episodes added to the window.
        """
        chex.assert_equal_shape([rewards, dones])
        if rewards.ndim == 2:
            return jax.lax.scan(
                lambda s, rd: (EpisodeStats.update(s, *rd), None), stats, (rewards, dones)
            )[0]
        chex.assert_shape(rewards, stats.running_return.shape)
        dones = dones.astype(bool)
        ret = stats.running_return + rewards.astype(jnp.float32)
        length = stats.running_length + 1
        ended = jnp.stack(  # [num_envs, 3]: what each env's ending episode adds to the window
            [ret, length.astype(jnp.float32), jnp.ones_like(ret)], axis=-1
        )
        return EpisodeStatsState(
            running_return=jnp.where(dones, 0.0, ret),
            running_length=jnp.where(dones, 0, length),
            window=stats.window + jnp.sum(jnp.where(dones[:, None], ended, 0.0), axis=0),
        )

    @staticmethod
    def summary(stats: EpisodeStatsState) -> dict[str, jax.Array]:
        """The window's signals: `episode_return`, `episode_length` (NaN when no episode
        finished) and `episode_count` (float32, so `sync` can average it with the others)."""
        return_sum, length_sum, n = stats.window
        safe = jnp.maximum(n, 1.0)
        return {
            "episode_return": jnp.where(n > 0, return_sum / safe, jnp.nan),
            "episode_length": jnp.where(n > 0, length_sum / safe, jnp.nan),
            "episode_count": n,
        }

    @staticmethod
    def new_window(stats: EpisodeStatsState) -> EpisodeStatsState:
        """Forgets finished episodes; running ones carry on."""
        return stats._replace(window=jnp.zeros_like(stats.window))
