"""`packed_scan`: `lax.scan` whose carry keeps its scalars in one integer vector per width.

Why (issue 16 item 3): a loop-carried 0-d array costs XLA's CPU backend a kernel of its own each
step: XLA does not fuse sibling scalar computations, and a scalar whose old value is still read
when the new one is written is copied first. An injected optimizer with two signal-driven
schedules carries about twenty such scalars (step counts, each schedule's value, window and
constants), so a small network's Adam step in `lax.scan` runs 39 kernels against plain Adam's
22; in `packed_scan` it runs 23 (`scripts/bench_overhead.py`, tests/optim/test_kernels.py): the
one more is the vector's copy (its new value reads other elements of the old one, so XLA cannot
write it in place).

Carried as one vector (the scalars' bits), the new values are written by one elementwise kernel
that XLA fuses with the scalar arithmetic feeding it; reads are slices, fused into their users.
On this 2-core CPU that step takes 1.11-1.15x plain Adam's in `lax.scan` and 1.035x in
`packed_scan` (medians of 7 quiet runs, docs/BENCHMARKS.md; 1.126x at 25 kernels, before the
schedules' window mean stopped being a divide of its own). On one H100, where each kernel is a
launch, packing took the step from 21.0 to 11.6 us (plain Adam 8.3; measured at 25 kernels).

Where it pays: a loop whose step is mostly an optimizer update on a small network (a user's
purejaxrl-style update loop, `scripts/bench_overhead.py`). Our agents keep `lax.scan`: measured
on PPO's compiled step (8 envs x 128 steps, 4 x 4 minibatches), packing the minibatch, epoch
and iteration scans saved 5 of 160 kernels per gradient step but cost about as many where the
loops nest (packing and unpacking at each inner loop's entry and exit): 66,406 -> 66,346
kernels per iteration, 0.1%, and DQN's 0.4%, for results that are no longer bitwise those of
before (see `packed_scan`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class _Layout(NamedTuple):
    """Where each leaf of the carry goes: its group and index there, or kept as it is."""

    treedef: Any
    # Per leaf: (group, index, dtype name), or None for a leaf carried as it is.
    slots: tuple[tuple[str, int, str] | None, ...]
    groups: tuple[tuple[str, int], ...]  # (group, number of scalars)


# Scalars of every dtype of one width share one integer vector (bools go with int32): floats
# travel as their bits (`bitcast_convert_type`, exact, denormals and NaN payloads included), so
# one kernel writes them all: with a vector per dtype, a value feeding two (a schedule's window
# mean, read by its float value and its integer counters) was computed in a kernel of its own.


def _group(dtype: Any) -> str:
    """The integer dtype whose vector carries scalars of `dtype` (as their bits)."""
    if dtype == jnp.bool_:
        return "int32"
    return f"int{8 * jnp.dtype(dtype).itemsize}"


def _to_group(x: jax.Array, group: str) -> jax.Array:
    if x.dtype == jnp.bool_:
        return x.astype(jnp.int32)
    if jnp.dtype(x.dtype).name == group:
        return x
    return jax.lax.bitcast_convert_type(x, jnp.dtype(group))


def _from_group(x: jax.Array, dtype: str) -> jax.Array:
    if dtype == "bool":
        return x.astype(jnp.bool_)
    if dtype == x.dtype.name:
        return x
    return jax.lax.bitcast_convert_type(x, jnp.dtype(dtype))


def _layout(carry: Any) -> _Layout:
    leaves, treedef = jax.tree.flatten(carry)
    counts: dict[str, int] = {}
    slots = []
    for leaf in leaves:
        shape, dtype = np.shape(leaf), jnp.result_type(leaf)
        # Key arrays (extended dtypes) and complex numbers cannot be bitcast to one integer;
        # they stay as they are.
        if (
            shape != ()
            or jax.dtypes.issubdtype(dtype, jax.dtypes.extended)
            or jnp.issubdtype(dtype, jnp.complexfloating)
        ):
            slots.append(None)
            continue
        group = _group(dtype)
        slots.append((group, counts.get(group, 0), jnp.dtype(dtype).name))
        counts[group] = counts.get(group, 0) + 1
    # A group of one scalar gains nothing from a vector of one.
    single = {group for group, n in counts.items() if n == 1}
    slots = [None if s is not None and s[0] in single else s for s in slots]
    groups = tuple((group, n) for group, n in counts.items() if n > 1)
    return _Layout(treedef, tuple(slots), groups)


def _fused_stack(values: list[jax.Array]) -> jax.Array:
    """`jnp.stack(values)` of integer scalars, written so that XLA fuses it with its inputs.

    XLA's CPU backend emits `stack` (a concatenate) as a kernel apart from each operand's. Here
    each scalar is padded into its place and the padded vectors summed (exact: integers, every
    other element 0): elementwise, one kernel with the scalar arithmetic feeding it. Padding
    rather than broadcasting: XLA does not fuse an expensive producer (a divide) into a
    consumer that reads it at every element; and no `iota == i` masks, which XLA computes in
    kernels of their own when two such chains share them.
    """
    n = len(values)
    out = None
    for i, v in enumerate(values):
        placed = jax.lax.pad(jnp.reshape(v, (1,)), jnp.zeros((), v.dtype), [(i, n - 1 - i, 0)])
        out = placed if out is None else out + placed
    return out


def _pack(layout: _Layout, carry: Any) -> tuple[dict[str, jax.Array], list[Any]]:
    leaves = layout.treedef.flatten_up_to(carry)
    grouped: dict[str, list[Any]] = {group: [None] * n for group, n in layout.groups}
    kept = []
    for leaf, slot in zip(leaves, layout.slots, strict=True):
        if slot is None:
            kept.append(leaf)
            continue
        group, i, dtype = slot
        if np.shape(leaf) != () or jnp.dtype(jnp.result_type(leaf)).name != dtype:
            # What `lax.scan` refuses too: a carry leaf that changed shape or dtype.
            raise TypeError(
                f"packed_scan: a carry leaf went from {dtype}[] to "
                f"{jnp.result_type(leaf)}{list(np.shape(leaf))}; the body must return the "
                "carry with the shapes and dtypes it got"
            )
        grouped[group][i] = _to_group(jnp.asarray(leaf), group)
    return {group: _fused_stack(values) for group, values in grouped.items()}, kept


def _unpack(layout: _Layout, packed: tuple[dict[str, jax.Array], list[Any]]) -> Any:
    vectors, kept = packed
    rest = iter(kept)
    leaves = [
        next(rest) if s is None else _from_group(vectors[s[0]][s[1]], s[2]) for s in layout.slots
    ]
    return layout.treedef.unflatten(leaves)


def packed_scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """`jax.lax.scan(f, init, xs, length)` with the carry's scalars packed per dtype.

    A drop-in for `lax.scan` in an on-device update loop: `f` sees and returns the carry exactly
    as with `lax.scan`. Inside the compiled loop every 0-d leaf of the carry (step counts,
    injected hyperparameters, schedule states...) travels as its bits in one integer vector per
    width (floats, ints and bools of 32 bits in one int32 vector), so the scalar bookkeeping of
    an update runs as one kernel instead of one per scalar (see the module docstring). Arrays of
    other shapes and PRNG keys are carried unchanged.

    The packing itself is exact (NaN payloads, -0.0 and denormals included), but XLA compiles
    the body around it differently: where it then contracts a multiply and an add into one
    fused multiply-add that it did not before (or the reverse), a result differs from
    `lax.scan`'s in its last bit, as any change to a compiled program may make it. Same seed,
    same result: runs stay deterministic.

    Args:
      f: `(carry, x) -> (carry, y)`, as for `lax.scan`.
      init: the initial carry.
      xs, length, kwargs: as for `lax.scan` (`reverse`, `unroll`...).

    Returns:
      `(carry, ys)`, as `lax.scan` returns them.

    >>> import jax.numpy as jnp
    >>> def step(c, x):
    ...     return {"n": c["n"] + 1, "total": c["total"] + x}, c["total"]
    >>> carry, ys = packed_scan(step, {"n": jnp.int32(0), "total": jnp.float32(0)}, jnp.ones(3))
    >>> print(int(carry["n"]), float(carry["total"]), ys.tolist())
    3 3.0 [0.0, 1.0, 2.0]
    """
    layout = _layout(init)
    if not layout.groups:
        return jax.lax.scan(f, init, xs, length=length, **kwargs)

    def body(packed, x):
        carry, y = f(_unpack(layout, packed), x)
        return _pack(layout, carry), y

    packed, ys = jax.lax.scan(body, _pack(layout, init), xs, length=length, **kwargs)
    return _unpack(layout, packed), ys
