"""The one reader of "this process's replicas" of a state with a leading device axis.

The loops' states, metrics and checkpoints all carry a leading `[num_devices]` axis. Reading
them on the host goes through `local_replicas`, which reads the shards this process holds and
never indexes the global array: `x[0]` on an array that spans processes is a computation every
process must run in step (a gloo collective on CPU), and hangs a multi-process run when one
process does it alone (e.g. the process that writes checkpoints).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def _position(shard) -> int:
    """Where a shard starts along the device axis (a shard holding the whole axis: 0)."""
    first = shard.index[0]
    return first if isinstance(first, int) else (first.start or 0)


def local_replicas(x: Any, first_only: bool = False) -> Any:
    """This process's replicas of `x` along its leading device axis, on the host.

    Reads `x`'s addressable shards in their order along the device axis (a shard that holds the
    whole axis, as in an unsharded array, is read once); with `first_only` only the first shard
    is transferred. A typed PRNG key array gives typed keys (its key data read the same way);
    anything that is not a `jax.Array` is read with `np.asarray`. A 0-d value has no device axis
    and comes back whole.

    Args:
      x: a replicated value with a leading device axis (e.g. a leaf of a loop's state).
      first_only: return this process's first replica only, without the device axis.

    Returns:
      A numpy array `[local_replicas, ...]`, or `[...]` with `first_only` (keys: typed keys).

    >>> import jax.numpy as jnp
    >>> local_replicas(jnp.arange(6).reshape(2, 3), first_only=True).tolist()
    [0, 1, 2]
    """
    if _is_key(x):
        impl = jax.random.key_impl(x)
        data = local_replicas(jax.random.key_data(x), first_only)
        return jax.random.wrap_key_data(data, impl=impl)
    if not isinstance(x, jax.Array):
        x = np.asarray(x)
        return x[0] if first_only and x.ndim else x
    shards: dict[int, Any] = {}
    for s in x.addressable_shards:
        shards.setdefault(_position(s) if x.ndim else 0, s)
    ordered = [shards[k] for k in sorted(shards)]
    if x.ndim == 0:
        return np.asarray(ordered[0].data)
    rows = [
        np.asarray(s.data).reshape((-1, *x.shape[1:])) for s in ordered[: 1 if first_only else None]
    ]
    return rows[0][0] if first_only else np.concatenate(rows)
