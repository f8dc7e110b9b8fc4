"""Running statistics for observation normalisation and reward scaling, synced across devices.

The maths of gymnasium's `NormalizeObservation` / `NormalizeReward` and stable-baselines3's
`VecNormalize` (its `RunningMeanStd`): batch moments merged into running ones with the parallel
algorithm of Chan et al. (1979), inputs normalised to `(x - mean) / sqrt(var + eps)` and clipped,
rewards divided by the running standard deviation of each env's discounted return. Every update
takes `axis_name` (rlax `create_ema` style): under a mapped device axis the devices' batch
moments are gathered in one collective and merged in a fixed order, so every replica holds
bitwise the same statistics.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

# Defaults of stable-baselines3's VecNormalize (clip_obs, clip_reward, epsilon).
CLIP = 10.0
EPS = 1e-8


class RunningMeanStdState(NamedTuple):
    """Mean and variance of every sample merged so far (identity normalisation before any)."""

    mean: jax.Array  # shape=shape, dtype=float32
    var: jax.Array  # shape=shape, dtype=float32; population variance (ddof=0)
    count: jax.Array  # shape=(), dtype=float32; samples merged so far


class RunningMeanStd:
    """Elementwise running mean and variance of samples of one shape.

    All methods are pure and jittable; the state keeps its shapes and dtypes (a `lax.scan`
    carry). Before any update the mean is 0 and the variance 1 (`normalize` is then a clip);
    the first update replaces them with the batch's moments (a count of 0, not SB3's 1e-4), so
    the statistics are exactly those of the samples seen.

    >>> import jax.numpy as jnp
    >>> s = RunningMeanStd.init((2,))
    >>> s = RunningMeanStd.update(s, jnp.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> s = RunningMeanStd.update(s, jnp.array([[4.0, 1.0]]))
    >>> [s.mean.tolist(), s.var.tolist(), float(s.count)]
    [[2.0, 1.0], [2.6666667, 0.0], 3.0]
    """

    @staticmethod
    def init(shape: tuple[int, ...]) -> RunningMeanStdState:
        """Statistics of samples of `shape`, before any sample."""
        shape = tuple(shape)
        return RunningMeanStdState(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.zeros((), jnp.float32),
        )

    @staticmethod
    def update(
        state: RunningMeanStdState, x: jax.Array, axis_name: str | None = None
    ) -> RunningMeanStdState:
        """Merges the samples `x` (`[..., *shape]`: every leading axis is a sample axis) of this
        device, and under `axis_name` those of every device (each with as many samples).

        Each device's moments are computed in two passes (numerically stable), gathered over
        `axis_name` in one `all_gather`, merged over devices, then into the running ones.
        """
        shape = state.mean.shape
        if x.shape[x.ndim - len(shape) :] != shape:
            raise ValueError(f"RunningMeanStd: samples of shape {shape}, got an array {x.shape}")
        x = x.reshape((-1, *shape)).astype(jnp.float32)
        n = x.shape[0]
        mean = jnp.mean(x, axis=0)
        m2 = jnp.sum(jnp.square(x - mean), axis=0)  # sum of squared deviations
        if axis_name is not None:
            moments = jax.lax.all_gather(jnp.stack([mean, m2]), axis_name)  # [D, 2, *shape]
            means, m2s = moments[:, 0], moments[:, 1]
            mean = jnp.mean(means, axis=0)  # equal counts on every device
            m2 = jnp.sum(m2s, axis=0) + n * jnp.sum(jnp.square(means - mean), axis=0)
            n = n * moments.shape[0]
        return _merge(state, mean, m2, n)

    @staticmethod
    def normalize(
        state: RunningMeanStdState, x: jax.Array, clip: float = CLIP, eps: float = EPS
    ) -> jax.Array:
        """`clip((x - mean) / sqrt(var + eps), -clip, clip)` in float32, `x`: `[..., *shape]`."""
        x = (x.astype(jnp.float32) - state.mean) / jnp.sqrt(state.var + eps)
        return jnp.clip(x, -clip, clip)


def _merge(state: RunningMeanStdState, mean, m2, n: int) -> RunningMeanStdState:
    """Chan et al.'s parallel merge of a batch (`n` samples, `mean`, `m2`) into `state`."""
    n = jnp.float32(n)
    total = state.count + n
    delta = mean - state.mean
    new_mean = state.mean + delta * (n / total)
    new_m2 = state.var * state.count + m2 + jnp.square(delta) * (state.count * n / total)
    return RunningMeanStdState(new_mean, new_m2 / total, total)


class RewardScaleState(NamedTuple):
    """Each env's running discounted return and the statistics of those returns."""

    running_return: jax.Array  # shape=(num_envs,), dtype=float32; reset after each episode
    stats: RunningMeanStdState  # of the discounted returns, shape ()


class RewardScale:
    """Rewards divided by the running standard deviation of the discounted return (SB3's
    `VecNormalize(norm_reward=True)`, gymnasium's `NormalizeReward`), not centred.

    >>> import jax.numpy as jnp
    >>> s = RewardScale.init(1)
    >>> r, d = jnp.array([[1.0], [1.0], [1.0]]), jnp.array([[False], [True], [False]])
    >>> s = RewardScale.update(s, r, d, gamma=1.0)  # returns 1, 2, then 1 after the reset
    >>> [s.running_return.tolist(), s.stats.mean.tolist()]
    [[1.0], 1.3333333]
    >>> RewardScale.scale(s, jnp.array([0.5])).round(3).tolist()
    [1.061]
    """

    @staticmethod
    def init(num_envs: int) -> RewardScaleState:
        """No return yet for `num_envs` envs (scaling by 1 before the first update)."""
        return RewardScaleState(jnp.zeros((num_envs,), jnp.float32), RunningMeanStd.init(()))

    @staticmethod
    def update(
        state: RewardScaleState,
        reward: jax.Array,
        done: jax.Array,
        gamma: float,
        axis_name: str | None = None,
    ) -> RewardScaleState:
        """Adds a rollout: `reward`, `done` `[T, num_envs]` (done: terminated or truncated).

        Each env's return is `gamma * return + reward` at every step, merged into the
        statistics, then reset to 0 where the episode ended (SB3's order).
        """
        chex.assert_equal_shape([reward, done])
        chex.assert_rank(reward, 2)

        def step(ret, rd):
            r, d = rd
            ret = gamma * ret + r.astype(jnp.float32)
            return jnp.where(d, 0.0, ret), ret

        running, returns = jax.lax.scan(step, state.running_return, (reward, done.astype(bool)))
        return RewardScaleState(running, RunningMeanStd.update(state.stats, returns, axis_name))

    @staticmethod
    def scale(
        state: RewardScaleState, reward: jax.Array, clip: float = CLIP, eps: float = EPS
    ) -> jax.Array:
        """`clip(reward / sqrt(var + eps), -clip, clip)` in float32."""
        x = reward.astype(jnp.float32) / jnp.sqrt(state.stats.var + eps)
        return jnp.clip(x, -clip, clip)
