"""An on-device ring replay buffer: fixed-shape arrays, so it can be a `lax.scan` carry."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp


class ReplayBufferState(NamedTuple):
    """A ring of `capacity` items; `data` has the items' pytree structure."""

    data: Any  # pytree of [capacity, ...] arrays
    index: jax.Array  # shape=(), dtype=int32; slot the next item is written to
    size: jax.Array  # shape=(), dtype=int32; filled slots, at most capacity


class ReplayBuffer:
    """Uniform replay over the last `capacity` items, pure and jittable (a plain ring buffer).

    Items are any pytree of arrays (e.g. a `Transition` without its extras). Slots fill from 0
    upwards, so the filled slots are always `[0, size)`; once full, the oldest items are
    overwritten first.

    >>> import jax, jax.numpy as jnp
    >>> buf = ReplayBuffer.init({"x": jnp.zeros((), jnp.int32)}, capacity=4)
    >>> buf = ReplayBuffer.add(buf, {"x": jnp.arange(3)})
    >>> buf = ReplayBuffer.add(buf, {"x": jnp.arange(3, 6)})  # wraps around: overwrites 0 and 1
    >>> buf.data["x"].tolist(), int(buf.index), int(buf.size)
    ([4, 5, 2, 3], 2, 4)
    >>> ReplayBuffer.sample(buf, jax.random.key(0), 3)["x"].shape
    (3,)
    """

    @staticmethod
    def init(item: Any, capacity: int) -> ReplayBufferState:
        """An empty buffer for items shaped like `item` (one item, no batch axis).

        Raises:
          ValueError: `capacity` is not an integer >= 1.
        """
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity=!r}")
        data = jax.tree.map(
            lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), item
        )
        return ReplayBufferState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    @staticmethod
    def capacity(state: ReplayBufferState) -> int:
        """Number of slots (static)."""
        return jax.tree.leaves(state.data)[0].shape[0]

    @staticmethod
    def add(state: ReplayBufferState, items: Any) -> ReplayBufferState:
        """Writes a batch of items (leading axis `[N]`, N <= capacity) after the newest ones.

        Raises:
          ValueError: N exceeds the capacity (slots would be written twice in one scatter,
            in no defined order).
        """
        capacity = ReplayBuffer.capacity(state)
        chex.assert_trees_all_equal_structs(state.data, items)
        n = jax.tree.leaves(items)[0].shape[0]
        if n > capacity:
            raise ValueError(f"cannot add {n} items at once to a buffer of capacity {capacity}")
        jax.tree.map(lambda d, x: chex.assert_shape(x, (n, *d.shape[1:])), state.data, items)
        slots = (state.index + jnp.arange(n, dtype=jnp.int32)) % capacity
        data = jax.tree.map(lambda d, x: d.at[slots].set(x.astype(d.dtype)), state.data, items)
        return ReplayBufferState(
            data=data,
            index=(state.index + n) % capacity,
            size=jnp.minimum(state.size + n, capacity).astype(jnp.int32),
        )

    @staticmethod
    def sample(state: ReplayBufferState, key: jax.Array, batch_size: int) -> Any:
        """`batch_size` items drawn uniformly with replacement from the filled slots.

        An empty buffer returns copies of slot 0 (zeros); callers gate learning on `size`.
        """
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
        return jax.tree.map(lambda d: d[idx], state.data)
