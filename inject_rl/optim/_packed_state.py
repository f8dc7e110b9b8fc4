"""`packed`: an optimizer whose state keeps its scalars in one vector per width.

Why: a jitted update called from a host loop (`step(params, opt_state, batch)`, once per
update) passes every leaf of the optimizer state in and out, and dispatch costs about 3 us a leaf
on a 2-core CPU. An injected Adam with two signal-driven schedules has 42 leaves, most of them
scalars (each schedule's value, window and constants); plain Adam has 13. Packed, the same
optimizer has plain Adam's 13 and its jitted call costs what plain Adam's does
(`scripts/bench_overhead.py`, `jit call` column).
"""

from __future__ import annotations

from typing import Any

import jax
import optax
from jax.tree_util import GetAttrKey

from inject_rl.optim import _packing


class PackedState:
    """An optimizer state with its scalars packed (see `packed`); a pytree.

    Its leaves are one integer vector per width (the scalars' bits), then the state's other
    arrays. `optim.hyperparams`, `set_hyperparam`, `scale_hyperparam`, `bounds` and `current`
    read through it; `unpacked()` gives the optimizer's own state.
    """

    __slots__ = ("layout", "vectors", "kept")

    def __init__(self, layout: _packing.Layout, vectors: dict[str, Any], kept: list[Any]):
        self.layout, self.vectors, self.kept = layout, vectors, kept

    @classmethod
    def pack(cls, state: Any, layout: _packing.Layout | None = None) -> PackedState:
        """Packs `state`: with its own layout (no leading axes), or with `layout`, in which case
        every scalar may carry the same leading axes (a population's member axis)."""
        if layout is None:
            layout = _packing.layout(state)
            return cls(layout, *_packing.pack(layout, state))
        leaves = layout.treedef.flatten_up_to(state)
        scalars = [leaf for leaf, slot in zip(leaves, layout.slots, strict=True) if slot]
        lead = jax.numpy.shape(scalars[0]) if scalars else ()
        return cls(layout, *_packing.pack(layout, state, lead))

    def unpacked(self) -> Any:
        """The optimizer's own state (scalars keep any leading axes of the vectors)."""
        return _packing.unpack(self.layout, (self.vectors, self.kept))

    def __repr__(self) -> str:
        return f"PackedState({self.unpacked()!r})"


jax.tree_util.register_pytree_with_keys(
    PackedState,
    lambda s: (
        ((GetAttrKey("vectors"), s.vectors), (GetAttrKey("kept"), s.kept)),
        s.layout,
    ),
    lambda layout, children: PackedState(layout, *children),
    flatten_func=lambda s: ((s.vectors, s.kept), s.layout),
)


def _is_packed(x: Any) -> bool:
    return isinstance(x, PackedState)


def unpacked(opt_state: Any) -> Any:
    """`opt_state` with every `PackedState` in it unpacked, in fresh containers throughout."""
    return jax.tree.map(
        lambda x: x.unpacked() if _is_packed(x) else x, opt_state, is_leaf=_is_packed
    )


def repacked(like: Any, new: Any) -> Any:
    """`new` (an `unpacked(like)` edited) packed again where `like` was packed."""
    outer = jax.tree.structure(like, is_leaf=_is_packed)
    parts = [
        PackedState.pack(part, old.layout) if _is_packed(old) else part
        for old, part in zip(outer.flatten_up_to(like), outer.flatten_up_to(new), strict=True)
    ]
    return outer.unflatten(parts)


def packed(opt: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """`opt` with its state's scalars packed into one integer vector per width.

    The updates are `opt`'s, bitwise; extra arguments (signals) pass through. The state is a
    `PackedState`: its leaves are the state's arrays plus one vector per width holding every
    0-d leaf's bits (step counts, injected hyperparameters, schedule states). Use it where the
    state crosses a `jit` boundary on every update (a host loop calling a jitted step): each leaf
    costs dispatch, and an injected optimizer's state is mostly scalars. Inside one compiled loop
    (`lax.scan`) it changes little; there `loops.packed_scan` packs the whole carry.

    The hyperparameter helpers of `inject_rl.optim` read and edit it by name as they do the
    unpacked state; `state.unpacked()` gives `opt`'s own state (e.g. for
    `optax.tree_utils.tree_get`).

    >>> import jax, jax.numpy as jnp, optax
    >>> from inject_rl import schedules
    >>> from inject_rl.optim import hyperparams, injected, packed
    >>> opt = packed(injected(optax.adam, learning_rate=schedules.kl_target(1e-3)))
    >>> state = opt.init(jnp.zeros(3))
    >>> len(jax.tree.leaves(state)) < len(jax.tree.leaves(state.unpacked()))
    True
    >>> for _ in range(2):  # KL far above target: the second update's rate is divided by 1.5
    ...     _, state = opt.update(jnp.ones(3), state, kl=jnp.float32(0.1))
    >>> print(f"{float(hyperparams(state)['learning_rate']):.2e}")
    6.67e-04
    """
    opt = optax.with_extra_args_support(opt)

    def init(params: Any) -> PackedState:
        return PackedState.pack(opt.init(params))

    def update(
        updates: Any, state: PackedState, params: Any = None, **extra_args: Any
    ) -> tuple[Any, PackedState]:
        if not _is_packed(state):
            raise TypeError(
                f"packed: update got a {type(state).__name__}, not the PackedState that its "
                "init returns"
            )
        updates, inner = opt.update(updates, state.unpacked(), params, **extra_args)
        return updates, PackedState(state.layout, *_packing.pack(state.layout, inner))

    return optax.GradientTransformationExtraArgs(init, update)
