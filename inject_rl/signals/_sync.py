"""Cross-device reduction of training signals, so every replica computes the same values."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from inject_rl.signals._names import EPISODE_STAT_SIGNALS


def sync(signals: Mapping[str, jax.Array], axis_name: str | None) -> dict[str, jax.Array]:
    """Reduces per-device training signals across the mapped axis `axis_name`.

    Use inside `pmap` / `shard_map` before `opt.update(..., **signals)`: without it each replica
    feeds its own signals to its schedules and their hyperparameters silently drift apart.

    * `episode_return`, `episode_length`: means weighted by `episode_count`; a device with
      `episode_count == 0` contributes nothing, even when its value is NaN. NaN when no device
      finished an episode.
    * `episode_count`: summed.
    * every other signal: averaged (floating point) or floor-averaged (integers).

    Args:
      signals: scalar signals by name; must hold `episode_count` when it holds an episode stat.
      axis_name: the mapped axis, or None to return the signals unchanged (single device).

    Returns:
      A new dict, identical on every replica.

    Raises:
      ValueError: an episode statistic comes without `episode_count`.

    >>> import jax, jax.numpy as jnp
    >>> per_device = {"episode_return": jnp.array([10.0, jnp.nan]),
    ...               "episode_count": jnp.array([2.0, 0.0]), "kl": jnp.array([0.01, 0.03])}
    >>> out = jax.vmap(lambda s: sync(s, "d"), axis_name="d")(per_device)
    >>> {k: v.tolist() for k, v in sorted(out.items())}
    {'episode_count': [2.0, 2.0], 'episode_return': [10.0, 10.0], 'kl': [0.02, 0.02]}
    """
    signals = dict(signals)
    if axis_name is None:
        return signals
    stats = [k for k in EPISODE_STAT_SIGNALS if k in signals]
    if stats and "episode_count" not in signals:
        raise ValueError(
            f"sync: signals {stats} need 'episode_count' to be weighted, got keys {sorted(signals)}"
        )
    out = {}
    if "episode_count" in signals:
        count = jnp.asarray(signals["episode_count"])
        weight = count.astype(jnp.float32)
        total = jax.lax.psum(weight, axis_name)
        out["episode_count"] = jax.lax.psum(count, axis_name)
        for k in stats:
            x = jnp.asarray(signals[k], jnp.float32)
            num = jax.lax.psum(jnp.where(weight > 0, x * weight, 0.0), axis_name)
            out[k] = jnp.where(total > 0, num / jnp.maximum(total, 1.0), jnp.nan)
    for k, v in signals.items():
        if k in out:
            continue
        v = jnp.asarray(v)
        if jnp.issubdtype(v.dtype, jnp.integer) or v.dtype == jnp.bool_:
            n = jax.lax.psum(1, axis_name)
            out[k] = (jax.lax.psum(v.astype(jnp.int32), axis_name) // n).astype(v.dtype)
        else:
            out[k] = jax.lax.pmean(v, axis_name)
    return out
