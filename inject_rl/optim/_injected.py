"""`injected`: an `optax.inject_hyperparams` optimizer made safe for signal-driven schedules."""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from inject_rl.optim._extra_args import forward_extra_args
from inject_rl.optim._ranges import check_hyperparams
from inject_rl.signals import SIGNAL_NAMES

# The training signals, and `update_cos` (`update_alignment`'s, read by `hypergradient`).
_SIGNALS = frozenset((*SIGNAL_NAMES, "update_cos"))
# The `extra_args` optax's own transforms read (line searches): never hidden from them, even
# when a schedule reads one of them too.
_OPTAX_ARGS = frozenset(("value", "grad", "value_fn"))


def _signals_read(schedule: Any) -> set[str]:
    """The `extra_args` keys our schedule reads: its `signal`, and those of the schedules it
    wraps (`warmup`, `clip`, `spike_guard`). Empty for a number or a step schedule."""
    names = set()
    for _ in range(100):  # a chain of wrappers, never a cycle in practice
        if schedule is None:
            break
        signal = getattr(schedule, "signal", None)
        if isinstance(signal, str):
            names.add(signal)
        schedule = getattr(schedule, "schedule", None)
    return names


def _drop_signals(
    tx: optax.GradientTransformation, hidden: frozenset[str]
) -> optax.GradientTransformationExtraArgs:
    """Wraps `tx` so that its update never sees the `hidden` (training-signal) `extra_args`.

    `chain` and `inject_hyperparams` forward every `extra_args` key to every member, and e.g.
    optax's line searches forward them to `value_fn`, which rejects keys it does not take.
    Other keys (`value`, `grad`, `value_fn`, ...) pass through.
    """
    tx = forward_extra_args(tx)

    def update_fn(updates, state, params=None, **extra_args):
        kept = {k: v for k, v in extra_args.items() if k not in hidden}
        return tx.update(updates, state, params, **kept)

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def _without_signals(factory: Callable[..., Any], hidden: frozenset[str]) -> Callable[..., Any]:
    # functools.wraps keeps `factory`'s signature visible to `inspect.signature` (through
    # `__wrapped__`): inject_hyperparams binds the hyperparameters by it.
    @functools.wraps(factory)
    def wrapped(*args, **kwargs):
        return _drop_signals(factory(*args, **kwargs), hidden)

    return wrapped


def _dtype(x: Any) -> Any:
    return getattr(x, "dtype", None)


def _cast_like(new: Any, old: Any) -> Any:
    dtype = _dtype(old)
    if dtype is None or _dtype(new) == dtype:
        return new
    return jnp.asarray(new).astype(dtype)


def _keep_dtypes(
    tx: optax.GradientTransformationExtraArgs,
) -> optax.GradientTransformationExtraArgs:
    """Casts each state leaf back to its input dtype and the updates to the grads' dtypes.

    With bf16 params and float32 hyperparameters Adam's `mu` turns from bf16 into float32 on
    the first update, which breaks a `lax.scan` carry.
    """

    def update_fn(updates, state, params=None, **extra_args):
        new_updates, new_state = tx.update(updates, state, params, **extra_args)
        if jax.tree.structure(new_state) != jax.tree.structure(state):
            raise ValueError(
                "the optimizer state changed structure on update: "
                f"{jax.tree.structure(state)} -> {jax.tree.structure(new_state)}"
            )
        new_updates = jax.tree.map(_cast_like, new_updates, updates)
        new_state = jax.tree.map(_cast_like, new_state, state)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def _check_names(factory: Callable[..., Any], names: list[str]) -> None:
    params = inspect.signature(factory).parameters
    name = getattr(factory, "__name__", repr(factory))
    variadic = [p.name for p in params.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if variadic:
        # inject_hyperparams binds by signature and would call `factory(kwargs={...})`.
        raise ValueError(
            f"{name} has variadic parameters ({', '.join(variadic)}), which "
            "optax.inject_hyperparams cannot inject; wrap it in a function with named parameters"
        )
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ValueError(
            f"{name} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(params)}"
        )


def _clip_by_global_norm(max_norm: Any) -> optax.GradientTransformation:
    """`optax.clip_by_global_norm` for an injected `max_norm` (an array in the hyperparameters'
    dtype): cast to each update's dtype as a Python float would be, so that bf16 updates stay
    bf16 (optax's own `lax.select` refuses a float32 `max_norm` beside bf16 updates). In
    float32 it computes exactly what optax's does."""

    def update_fn(updates, state, params=None):
        del params
        g_norm = optax.tree.norm(updates)
        trigger = jnp.squeeze(g_norm < jnp.asarray(max_norm).astype(g_norm.dtype))

        def clip_fn(t):
            scaled = (t / g_norm.astype(t.dtype)) * jnp.asarray(max_norm).astype(t.dtype)
            return jax.lax.select(trigger, t, scaled)

        return jax.tree.map(clip_fn, updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def _clip(clip: Any, dtype: Any) -> optax.GradientTransformation | None:
    if clip is None:
        return None
    if callable(clip):  # a step schedule or a StatefulSchedule (which has `__call__`)
        return optax.inject_hyperparams(_clip_by_global_norm, hyperparam_dtype=dtype)(max_norm=clip)
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real | np.ndarray | jax.Array):
        raise TypeError(f"clip must be None, a positive float or a schedule, got {clip=}")
    if not float(clip) > 0:
        raise ValueError(f"clip must be a positive max global norm, got {clip=}")
    return optax.clip_by_global_norm(clip)


def injected(
    factory: Callable[..., optax.GradientTransformation],
    *,
    clip: Any = None,
    hyperparam_dtype: Any = jnp.float32,
    **hyperparams: Any,
) -> optax.GradientTransformationExtraArgs:
    """Builds `optax.inject_hyperparams(factory)(**hyperparams)` safe for our training loops.

    On top of plain `optax.inject_hyperparams` it:

    - stores float hyperparameters as `hyperparam_dtype` (float32): optax's default uses the
      params' dtype, and bf16 rounds Adam's b2=0.999 to 1.0, making the first update NaN
      (optax#1414-style hazard);
    - keeps the state's dtypes fixed across updates and returns updates in the grads' dtype, so
      the state can be a `lax.scan` carry with bf16 params;
    - hides our training signals (`SIGNAL_NAMES` keys of `extra_args`), and any other key its
      schedules read (a `signal="approx_kl"` of the user's), from the transform built by
      `factory`, which may reject unknown keys (optax's line searches do); schedules still
      receive every key, and `value`, `grad` and `value_fn` always reach the transform;
    - optionally clips gradients by global norm first;
    - range-checks the hyperparameters it can read, by name, whatever the factory: all finite;
      `learning_rate` > 0; `b1`, `b2`, `momentum` (None allowed) in [0, 1); `decay` in [0, 1];
      `eps`, `eps_root`, `weight_decay` >= 0. A schedule is checked by its initial value where
      that can be read without signals (a scheduled learning rate may start at 0); traced
      values are not checked.

    Args:
        factory: an optax optimizer or transform factory, e.g. `optax.adam`.
        clip: None, a positive max global norm, or a schedule (step-count callable or
            `optax.schedules.StatefulSchedule`) for it, injected as `max_norm`.
        hyperparam_dtype: dtype of float hyperparameters; None for optax's default.
        **hyperparams: the factory's arguments: floats, arrays, step schedules or
            `StatefulSchedule`s.

    Returns:
        An `optax.GradientTransformationExtraArgs`; pass training signals to its `update` as
        keyword arguments.

    Raises:
        ValueError: if a hyperparameter is not a parameter of `factory`, if `factory` takes
            `*args`/`**kwargs` (which `inject_hyperparams` cannot bind), if a hyperparameter is
            out of its range (e.g. `adam: b2 must be in [0, 1), got b2=-1.0`), or if
            `clip` <= 0.
        TypeError: if `clip` is neither None, a number nor a schedule.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from inject_rl.optim import hyperparams, injected
        >>> opt = injected(optax.adam, learning_rate=1e-3, b2=0.99, clip=0.5)
        >>> params = jnp.ones(2, jnp.bfloat16)
        >>> state = opt.init(params)
        >>> updates, state = opt.update(jnp.ones(2, jnp.bfloat16), state, params, kl=0.01)
        >>> print(updates.dtype, hyperparams(state)["b2"])
        bfloat16 0.99
    """
    _check_names(factory, list(hyperparams))
    check_hyperparams(factory, hyperparams)
    clip_tx = _clip(clip, hyperparam_dtype)
    read = set().union(*map(_signals_read, [clip, *hyperparams.values()]))
    hidden = _SIGNALS | (read - _OPTAX_ARGS)
    tx = optax.inject_hyperparams(
        _without_signals(factory, hidden), hyperparam_dtype=hyperparam_dtype
    )(**hyperparams)
    if clip_tx is not None:
        tx = optax.chain(clip_tx, tx)
    return _keep_dtypes(tx)
