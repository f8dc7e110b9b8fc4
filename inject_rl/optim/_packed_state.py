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
from inject_rl.optim._extra_args import forward_extra_args


class PackedState:
    """An optimizer state with its scalars packed (see `packed`); a pytree.

    Its leaves are one integer vector per width (the scalars' bits), then the state's other
    arrays. `optim.hyperparams`, `set_hyperparam`, `scale_hyperparam`, `bounds` and `current`
    read through it; `unpacked()` gives the optimizer's own state. The vectors' key path names
    the layout (`.packed_<8 hex digits>['int32']`), so a checkpoint of another optimizer's state
    is refused on restore rather than read into the wrong slots.
    """

    __slots__ = ("layout", "vectors", "kept")

    def __init__(self, layout: _packing.Layout, vectors: dict[str, Any], kept: list[Any]):
        self.layout, self.vectors, self.kept = layout, vectors, kept

    @classmethod
    def pack(
        cls, state: Any, layout: _packing.Layout | None = None, lead: tuple[int, ...] = ()
    ) -> PackedState:
        """Packs `state`: with its own layout, or with `layout`, every scalar of shape `lead`
        (leading axes such as a population's member axis).

        Raises:
          TypeError: a scalar is not of shape `lead` or not of its layout's dtype.
        """
        if layout is None:
            layout = _packing.layout(state)
        return cls(layout, *_packing.pack(layout, state, lead))

    @property
    def lead(self) -> tuple[int, ...]:
        """The leading axes of every packed scalar (`()` but for a stacked population)."""
        return next((tuple(v.shape[:-1]) for v in self.vectors.values()), ())

    def unpacked(self) -> Any:
        """The optimizer's own state (scalars keep any leading axes of the vectors)."""
        return _packing.unpack(self.layout, (self.vectors, self.kept))

    def __repr__(self) -> str:
        return f"PackedState({self.unpacked()!r})"


jax.tree_util.register_pytree_with_keys(
    PackedState,
    lambda s: (
        (
            (GetAttrKey(f"packed_{_packing.fingerprint(s.layout)}"), s.vectors),
            (GetAttrKey("kept"), s.kept),
        ),
        s.layout,
    ),
    lambda layout, children: PackedState(layout, *children),
    flatten_func=lambda s: ((s.vectors, s.kept), s.layout),
)


def _is_packed(x: Any) -> bool:
    return isinstance(x, PackedState)


def unpacked(opt_state: Any) -> Any:
    """`opt_state` with every `PackedState` in it unpacked (nested ones too), in fresh
    containers throughout."""
    return jax.tree.map(
        lambda x: unpacked(x.unpacked()) if _is_packed(x) else x, opt_state, is_leaf=_is_packed
    )


def repacked(like: Any, new: Any) -> Any:
    """`new` (an `unpacked(like)` edited) packed again where `like` was packed.

    Raises:
      ValueError: the edit changed a packed scalar's shape or dtype.
    """
    outer = jax.tree.structure(like, is_leaf=_is_packed)
    parts = []
    for old, part in zip(outer.flatten_up_to(like), outer.flatten_up_to(new), strict=True):
        if not _is_packed(old):
            parts.append(part)
            continue
        try:
            parts.append(PackedState.pack(repacked(old.unpacked(), part), old.layout, old.lead))
        except TypeError as e:
            raise ValueError(f"the edited state cannot be packed again: {e}") from None
    return outer.unflatten(parts)


def packed(opt: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """`opt` with its state's scalars packed into one integer vector per width.

    The updates are `opt`'s; extra arguments (signals) pass through. The state is a
    `PackedState`: its leaves are the state's arrays plus one vector per width holding every
    0-d leaf's bits (step counts, injected hyperparameters, schedule states). Use it where the
    state crosses a `jit` boundary on every update (a host loop calling a jitted step): each leaf
    costs dispatch, and an injected optimizer's state is mostly scalars. Inside one compiled loop
    (`lax.scan`) it compiles the scalar bookkeeping to one kernel, as `loops.packed_scan` does.

    The hyperparameter helpers of `inject_rl.optim` read and edit it by name as they do the
    unpacked state; `state.unpacked()` gives `opt`'s own state (e.g. for
    `optax.tree_utils.tree_get`). What packing changes:

    - Bits: packing itself is exact, but XLA compiles the scalar arithmetic around it
      differently and may contract a multiply and an add where it did not (or the reverse): a
      result may differ in its last bit from the unpacked optimizer's (in float32 and bfloat16
      we have seen none; in float64, `prodigy` after a few steps). Same seed, same result.
    - The vectors hold bits: arithmetic over the state's leaves (averaging members or
      replicas) means nothing for them and is refused when the state is read; and the state's
      scalars are not differentiable (a gradient with respect to an injected value reads 0).
      Unpack first for either.
    - `optax.tree_map_params` does not apply (a placeholder `init` builds another layout).

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
    if not isinstance(opt, optax.GradientTransformation):
        raise TypeError(
            f"packed: expected an optax.GradientTransformation, got {type(opt).__name__}"
        )
    opt = forward_extra_args(opt)

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
        try:
            return updates, PackedState.pack(inner, state.layout, state.lead)
        except TypeError as e:
            raise TypeError(f"packed: the wrapped optimizer's update returned {e}") from None

    return optax.GradientTransformationExtraArgs(init, update)
