"""Scalars of a pytree as one integer vector per width: the machinery of `optim.packed` (an
optimizer state) and `loops.packed_scan` (a loop's carry).

Every 0-d leaf of a tree travels as its bits in one integer vector per width (floats, ints and
bools of 32 bits in one int32 vector); other leaves stay as they are. Exact: floats are bitcast
(`bitcast_convert_type`), denormals, -0.0 and NaN payloads included. A packed tree may carry
leading axes (a population's member axis, replicas) in front of every packed scalar: the vector
is then `[..., n]` and each scalar `vector[..., i]`.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Layout(NamedTuple):
    """Where each leaf of a tree goes: its group and index there, or kept as it is."""

    treedef: Any
    # Per leaf: (group, index, dtype name), or None for a leaf kept as it is.
    slots: tuple[tuple[str, int, str] | None, ...]
    groups: tuple[tuple[str, int], ...]  # (group, number of scalars)


# Scalars of every dtype of one width share one integer vector (bools go with int32): floats
# travel as their bits, so one kernel writes them all: with a vector per dtype, a value feeding
# two (a schedule's window mean, read by its float value and its integer counters) was computed
# in a kernel of its own.


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


def layout(tree: Any) -> Layout:
    """The layout of `tree`, whose leaves carry no leading axes (0-d leaves are packed)."""
    leaves, treedef = jax.tree.flatten(tree)
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
    return Layout(treedef, tuple(slots), groups)


def _fused_stack(values: list[jax.Array]) -> jax.Array:
    """`jnp.stack(values, -1)` of integer arrays, written so that XLA fuses it with its inputs.

    XLA's CPU backend emits `stack` (a concatenate) as a kernel apart from each operand's. Here
    each value is padded into its place and the padded vectors summed (exact: integers, every
    other element 0): elementwise, one kernel with the scalar arithmetic feeding it. Padding
    rather than broadcasting: XLA does not fuse an expensive producer (a divide) into a
    consumer that reads it at every element; and no `iota == i` masks, which XLA computes in
    kernels of their own when two such chains share them.
    """
    n = len(values)
    out = None
    for i, v in enumerate(values):
        lead = [(0, 0, 0)] * v.ndim
        placed = jax.lax.pad(v[..., None], jnp.zeros((), v.dtype), [*lead, (i, n - 1 - i, 0)])
        out = placed if out is None else out + placed
    return out


def pack(
    layout_: Layout, tree: Any, lead: tuple[int, ...] = ()
) -> tuple[dict[str, jax.Array], list[Any]]:
    """`(vectors, kept)`: `tree`'s packed scalars, each of shape `lead`, and its other leaves.

    Raises:
      TypeError: a leaf to pack is not of shape `lead` or changed dtype.
    """
    leaves = layout_.treedef.flatten_up_to(tree)
    grouped: dict[str, list[Any]] = {group: [None] * n for group, n in layout_.groups}
    kept = []
    for k, (leaf, slot) in enumerate(zip(leaves, layout_.slots, strict=True)):
        if slot is None:
            kept.append(leaf)
            continue
        group, i, dtype = slot
        if np.shape(leaf) != lead or jnp.dtype(jnp.result_type(leaf)).name != dtype:
            raise TypeError(
                f"a scalar leaf ({paths(layout_)[k] or 'the root'}) went from "
                f"{dtype}{list(lead)} to {jnp.result_type(leaf)}{list(np.shape(leaf))}"
            )
        grouped[group][i] = _to_group(jnp.asarray(leaf), group)
    return {group: _fused_stack(values) for group, values in grouped.items()}, kept


def _element(vector: Any, slot: tuple[str, int, str]) -> Any:
    group, i, dtype = slot
    if jnp.dtype(vector.dtype).name != group:
        # What arithmetic over a packed tree (a mean of members, say) leaves: not bits any more.
        raise TypeError(
            f"a packed vector must be {group}, got {vector.dtype}: its elements are the bits "
            "of the scalars; arithmetic over a packed tree (averaging members or replicas) "
            "does not apply to them, unpack it first"
        )
    if isinstance(vector, jax.ShapeDtypeStruct):  # e.g. from `jax.eval_shape`
        return jax.ShapeDtypeStruct(vector.shape[:-1], jnp.dtype(dtype))
    return _from_group(vector[..., i], dtype)


def unpack(layout_: Layout, packed: tuple[dict[str, jax.Array], list[Any]]) -> Any:
    """The tree that `pack` packed (leading axes of the vectors kept on every scalar).

    Raises:
      TypeError: a vector is not of its integer dtype (see `_element`).
    """
    vectors, kept = packed
    rest = iter(kept)
    leaves = [next(rest) if s is None else _element(vectors[s[0]], s) for s in layout_.slots]
    return layout_.treedef.unflatten(leaves)


@functools.lru_cache(maxsize=256)
def paths(layout_: Layout) -> tuple[str, ...]:
    """Each leaf's key path in the tree, as `jax.tree_util.keystr` writes it."""
    skeleton = layout_.treedef.unflatten(list(range(layout_.treedef.num_leaves)))
    found = jax.tree_util.tree_flatten_with_path(skeleton)[0]
    return tuple(jax.tree_util.keystr(path) for path, _ in found)


@functools.lru_cache(maxsize=256)
def fingerprint(layout_: Layout) -> str:
    """8 hex digits naming the layout: which leaf (path and dtype) sits where. Two trees of
    different structure, or with their scalars in other slots, get different fingerprints."""
    # Paths and slots only: a treedef's text may hold an object's address (a custom node's
    # auxiliary data), which would differ between the process that saves and the one that
    # restores.
    described = map(str, zip(paths(layout_), layout_.slots, strict=True))
    return hashlib.sha256("\0".join(described).encode()).hexdigest()[:8]
