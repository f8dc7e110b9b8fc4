"""Cross-device reduction of training signals, so every replica computes the same values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from inject_rl.signals._names import EPISODE_STAT_SIGNALS

# Integers travel through the float all-reduce as 8-bit chunks: each chunk's sum over n devices
# is at most 255 * n, exact in float32's 24-bit mantissa up to 65,793 devices; an integer mean's
# remainders sum to less than n**2, exact in 32 bits up to 2**16 devices.
_CHUNK_BITS = 8
_MAX_DEVICES = min((2**24 - 1) // (2**_CHUNK_BITS - 1), 2**16)


def sync(signals: Mapping[str, jax.Array], axis_name: str | None) -> dict[str, jax.Array]:
    """Reduces per-device training signals across the mapped axis `axis_name`, in one all-reduce.

    Use inside `pmap` / `shard_map` before `opt.update(..., **signals)`: without it each replica
    feeds its own signals to its schedules and their hyperparameters silently drift apart.

    * `episode_return`, `episode_length`: means weighted by `episode_count`; a device with
      `episode_count == 0` contributes nothing, even when its value is NaN. NaN when no device
      finished an episode.
    * `episode_count`: summed.
    * every other signal: averaged (floating point) or floor-averaged (integers).

    Every signal is packed into one float buffer reduced with one `psum` (issue 16: one psum per
    signal was a dozen all-reduces per step, and collectives cost latency); integers travel as
    8-bit chunks, so their sums stay exact (`episode_count` wraps as int32 does), and an integer
    mean is the floor of the exact mean, never of a wrapped sum. On an axis of one device
    each signal gets its own (free) collective instead, as before the packing, which keeps
    one-device runs bitwise-identical to what they were.

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
    return _sync(signals, axis_name, ())[0]


def sync_and_pmean(
    signals: Mapping[str, jax.Array], tree: Any, axis_name: str | None
) -> tuple[dict[str, jax.Array], Any]:
    """`(sync(signals, axis_name), lax.pmean(tree, axis_name))` in one all-reduce.

    For a learner step that syncs the batch's episode statistics and averages the gradients:
    one collective instead of two (issue 16: a step costs one all-reduce). `tree`'s leaves must
    be floating point (gradients, the loss's scalar signals); each mean is bitwise what
    `lax.pmean` gives (`psum`, then divided by the axis size). On an axis of one device the
    mean is each leaf's own (free) `pmean`, as `inject_rl.loops.pmean` keeps it.

    Raises:
      ValueError: as `sync`, or a leaf of `tree` is not floating point.

    >>> import jax, jax.numpy as jnp
    >>> per_device = {"episode_return": jnp.array([10.0, 20.0]),
    ...               "episode_count": jnp.array([1.0, 3.0])}
    >>> grads = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0]])}
    >>> sig, g = jax.vmap(lambda s, t: sync_and_pmean(s, t, "d"), axis_name="d")(
    ...     per_device, grads)
    >>> sig["episode_return"].tolist(), g["w"].tolist()
    ([17.5, 17.5], [[2.0, 3.0], [2.0, 3.0]])
    """
    leaves, treedef = jax.tree.flatten(tree)
    for x in leaves:
        if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
            raise ValueError(
                f"sync_and_pmean: tree leaves must be floating point, got {jnp.asarray(x).dtype}"
            )
    out, means = _sync(signals, axis_name, leaves)
    return out, jax.tree.unflatten(treedef, means)


def _sync(signals, axis_name, leaves) -> tuple[dict[str, jax.Array], list[jax.Array]]:
    """`sync` of `signals` and the `pmean` of each of `leaves`, in one all-reduce."""
    if axis_name is None:
        return dict(signals), list(leaves)
    signals = {k: jnp.asarray(v) for k, v in signals.items()}
    stats = [k for k in EPISODE_STAT_SIGNALS if k in signals]
    if stats and "episode_count" not in signals:
        raise ValueError(
            f"sync: signals {stats} need 'episode_count' to be weighted, got keys {sorted(signals)}"
        )
    n = jax.lax.axis_size(axis_name)
    if n == 1:
        return _each(signals, stats, axis_name), [jax.lax.pmean(x, axis_name) for x in leaves]
    if n > _MAX_DEVICES:
        raise ValueError(f"sync: at most {_MAX_DEVICES} devices on {axis_name!r}, got {n}")
    floats = [v.dtype for v in signals.values() if jnp.issubdtype(v.dtype, jnp.inexact)]
    floats += [jnp.asarray(x).dtype for x in leaves]
    buffer = _Buffer(jnp.result_type(jnp.float32, *floats))
    # The mean's leaves first, in order, as `ravel_pytree` lays out `loops.pmean`'s buffer.
    mean_slots = [buffer.put(jnp.asarray(x)) for x in leaves]
    slots = {}
    weight = None
    if "episode_count" in signals:
        count = signals["episode_count"]
        weight = count.astype(jnp.float32)
        slots["episode_count"] = buffer.put(count)
        total = slots["episode_count"] if count.dtype == jnp.float32 else buffer.put(weight)
        for k in stats:
            x = signals[k].astype(jnp.float32)
            slots[k] = buffer.put(jnp.where(weight > 0, x * weight, 0.0))
    for k, v in signals.items():
        if k in slots:
            continue
        if _is_integer(v.dtype):
            # The floor of the mean as sum(x // n) + sum(x % n) // n: no sum of the values
            # themselves, which wraps past 2**31 (a step counter on 2 devices after 1.07e9).
            x = v.astype(jnp.int32)
            slots[k] = (buffer.put(x // n), buffer.put(x % n))
        else:
            slots[k] = buffer.put(v)
    sums = buffer.psum(axis_name)
    out = {}
    if weight is not None:
        out["episode_count"] = sums(slots["episode_count"]).astype(count.dtype)
        total = sums(total).astype(jnp.float32)
        for k in stats:
            num = sums(slots[k]).astype(jnp.float32)
            out[k] = jnp.where(total > 0, num / jnp.maximum(total, 1.0), jnp.nan)
    for k, v in signals.items():
        if k in out:
            continue
        if _is_integer(v.dtype):
            quotients, remainders = slots[k]
            rest = jax.lax.bitcast_convert_type(sums(remainders), jnp.uint32) // jnp.uint32(n)
            out[k] = (sums(quotients) + rest.astype(jnp.int32)).astype(v.dtype)
        else:
            out[k] = (sums(slots[k]) / n).astype(v.dtype)
    return out, [(sums(slot) / n).astype(slot[2]) for slot in mean_slots]


def _is_integer(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_


class _Buffer:
    """Arrays flattened into one buffer for one `psum`; integers as exact 8-bit chunks."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.pieces: list[jax.Array] = []
        self.size = 0

    def put(self, x: jax.Array) -> tuple[int, tuple[int, ...], jax.typing.DTypeLike]:
        """Appends `x`; returns its slot (offset, shape, dtype) for `psum`'s reader."""
        slot = (self.size, x.shape, x.dtype)
        if _is_integer(x.dtype):
            # int32 as its two's-complement bits; the chunks' sums rebuild the int32 sum mod 2**32
            u = jax.lax.bitcast_convert_type(x.astype(jnp.int32), jnp.uint32).ravel()
            mask = jnp.uint32(2**_CHUNK_BITS - 1)
            flat = jnp.concatenate(
                [(u >> jnp.uint32(s)) & mask for s in range(0, 32, _CHUNK_BITS)]
            ).astype(self.dtype)
        else:
            flat = x.astype(self.dtype).ravel()
        self.pieces.append(flat)
        self.size += flat.size
        return slot

    def psum(self, axis_name):
        """The sum over `axis_name` (one all-reduce), as a reader `slot -> summed array`
        (floats in the buffer's dtype, integers as int32)."""
        total = jax.lax.psum(jnp.concatenate(self.pieces), axis_name)

        def read(slot):
            start, shape, dtype = slot
            size = math.prod(shape)
            if not _is_integer(dtype):
                return total[start : start + size].reshape(shape)
            chunks = total[start : start + size * 32 // _CHUNK_BITS].astype(jnp.uint32)
            chunks = chunks.reshape((32 // _CHUNK_BITS, size))
            u = sum(chunks[i] << jnp.uint32(i * _CHUNK_BITS) for i in range(len(chunks)))
            return jax.lax.bitcast_convert_type(u, jnp.int32).reshape(shape)

        return read


def _each(signals, stats, axis_name) -> dict[str, jax.Array]:
    """`sync` with one collective per signal: on a one-device axis, where every collective is
    free, the per-signal form is kept so that results stay bitwise what they were."""
    out = {}
    if "episode_count" in signals:
        count = signals["episode_count"]
        weight = count.astype(jnp.float32)
        total = jax.lax.psum(weight, axis_name)
        out["episode_count"] = jax.lax.psum(count, axis_name)
        for k in stats:
            x = signals[k].astype(jnp.float32)
            num = jax.lax.psum(jnp.where(weight > 0, x * weight, 0.0), axis_name)
            out[k] = jnp.where(total > 0, num / jnp.maximum(total, 1.0), jnp.nan)
    for k, v in signals.items():
        if k in out:
            continue
        if _is_integer(v.dtype):
            n = jax.lax.psum(1, axis_name)
            x = v.astype(jnp.int32)
            rest = jax.lax.psum(x % n, axis_name) // n  # as `_sync`: no sum that could wrap
            out[k] = (jax.lax.psum(x // n, axis_name) + rest).astype(v.dtype)
        else:
            out[k] = jax.lax.pmean(v, axis_name)
    return out
