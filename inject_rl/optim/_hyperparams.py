"""Reading and overriding injected hyperparameters by name, anywhere in an optimizer state."""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

from inject_rl.optim._packed_state import repacked, unpacked
from inject_rl.optim._ranges import check_value

# The legacy `InjectHyperparamsState` (optax < 0.1.9) records no schedule states, so for it we
# cannot tell scheduled from constant hyperparameters; both are read and may be overridden.
_INJECT_STATES = (optax.InjectStatefulHyperparamsState, optax.InjectHyperparamsState)

# Fields through which optax wrappers hold an inner state (`masked`, `partition`, `MultiSteps`,
# `inject_hyperparams`). They carry no meaning for a user, so qualified names omit them.
_WRAPPER_FIELDS = frozenset({"inner_state", "inner_states", "inner_opt_state"})


class _Entry(NamedTuple):
    path: tuple[Any, ...]  # key path of the injection node inside the optimizer state
    node: Any  # the InjectStatefulHyperparamsState / InjectHyperparamsState
    key: str  # the hyperparameter's key in `node.hyperparams`


def _is_inject(x: Any) -> bool:
    return isinstance(x, _INJECT_STATES)


def _find_injections(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[tuple, Any]]:
    """Every injection node in `tree` with its key path, outer before inner."""
    found = []
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_inject)
    for path, leaf in leaves:
        if _is_inject(leaf):
            path = prefix + tuple(path)
            found.append((path, leaf))
            # An injected factory may itself build injected transforms.
            found += _find_injections(leaf.inner_state, path + (GetAttrKey("inner_state"),))
    return found


def _part(key: Any) -> str:
    if isinstance(key, DictKey):
        return str(key.key)
    if isinstance(key, SequenceKey):
        return str(key.idx)
    if isinstance(key, GetAttrKey):
        return key.name
    if isinstance(key, FlattenedIndexKey):
        return str(key.key)
    return str(key)


def _qualified(path: tuple[Any, ...], key: str, keep_wrappers: bool) -> str:
    parts = [_part(k) for k in path]
    if not keep_wrappers:
        parts = [p for p in parts if p not in _WRAPPER_FIELDS]
    return "/".join([*parts, key])


def _index(opt_state: Any) -> dict[str, _Entry]:
    """Maps each public hyperparameter name to where it lives in `opt_state` (an unpacked one:
    see `optim.packed`)."""
    entries = [
        _Entry(path, node, key)
        for path, node in _find_injections(opt_state)
        for key in node.hyperparams
    ]
    groups: dict[str, list[_Entry]] = collections.defaultdict(list)
    for entry in entries:
        groups[entry.key].append(entry)
    names: dict[str, _Entry] = {}
    for entry in entries:
        group = groups[entry.key]
        if len(group) == 1:
            names[entry.key] = entry
            continue
        short = [_qualified(e.path, e.key, keep_wrappers=False) for e in group]
        keep_wrappers = len(set(short)) < len(short)  # e.g. injection directly inside injection
        names[_qualified(entry.path, entry.key, keep_wrappers)] = entry
    return names


def hyperparams(opt_state: Any) -> dict[str, jax.Array]:
    """Returns the current value of every injected hyperparameter in an optimizer state.

    Finds `optax.inject_hyperparams` states anywhere in `opt_state`: inside `chain`,
    `named_chain`, `MultiSteps`, `masked`, `partition`, and inside other injections. A name is
    the plain hyperparameter name when it is unique across the state; when several injected
    transforms share one, each gets a "/"-joined path (dict keys, tuple indices, field names,
    without wrapper fields such as `inner_state` unless they are needed to tell names apart),
    e.g. `"actor/learning_rate"` or `"0/learning_rate"`. Unlike
    `optax.tree_utils.tree_get(state, "learning_rate")`, which raises `KeyError` once the value
    is scheduled (the key then names both a value and a schedule state), this reads only the
    values.

    Args:
        opt_state: any optimizer state (a `packed` one included).

    Returns:
        Name to value, as stored: the values used by the latest update (the initial values
        after `init`), with any leading replica/batch axes kept.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from inject_rl.optim import hyperparams
        >>> opt = optax.partition(
        ...     {"actor": optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        ...      "critic": optax.inject_hyperparams(optax.sgd)(learning_rate=0.5)},
        ...     {"pi": "actor", "v": "critic"})
        >>> state = opt.init({"pi": jnp.zeros(2), "v": jnp.zeros(1)})
        >>> {name: float(value) for name, value in hyperparams(state).items()}
        {'actor/learning_rate': 0.1, 'critic/learning_rate': 0.5}
    """
    index = _index(unpacked(opt_state))
    return {name: entry.node.hyperparams[entry.key] for name, entry in index.items()}


def set_hyperparam(opt_state: Any, name: str, value: Any) -> Any:
    """Returns `opt_state` with one constant (unscheduled) hyperparameter replaced.

    The pure counterpart of optax's documented idiom `state.hyperparams["b2"] = 0.95`, which
    mutates the state in place. The next `update` uses the new value. Works under `jit` (a traced
    `value` is fine) and on replicated states.

    Args:
        opt_state: any optimizer state holding injected hyperparameters; not modified.
        name: a name as returned by `hyperparams`.
        value: the new value; cast to the stored dtype and broadcast to the stored shape (a
            scalar fills every replica of a replicated state).

    Returns:
        A new optimizer state sharing no containers with `opt_state`.

    Raises:
        ValueError: if `name` is unknown or scheduled (optax recomputes a scheduled value from
            its schedule on every update and silently ignores overrides), or if `value` does not
            broadcast to the stored shape.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from inject_rl.optim import hyperparams, set_hyperparam
        >>> opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
        >>> state = opt.init(jnp.zeros(2))
        >>> new_state = set_hyperparam(state, "learning_rate", 0.5)
        >>> updates, _ = opt.update(jnp.ones(2), new_state)
        >>> print(updates, float(hyperparams(state)["learning_rate"]))
        [-0.5 -0.5] 0.1
    """
    # Every container rebuilt (packed states unpacked), then the fresh copy edited: the
    # caller's state stays untouched.
    new_state = unpacked(opt_state)
    index = _index(new_state)
    if name not in index:
        raise ValueError(
            f"unknown hyperparameter {name!r}; the state holds: {', '.join(index) or 'none'}"
        )
    entry = index[name]
    if entry.key in getattr(entry.node, "hyperparams_states", {}):
        raise ValueError(
            f"hyperparameter {name!r} is scheduled: optax.inject_hyperparams recomputes it from "
            "its schedule on every update and silently ignores overrides; set a constant instead"
        )
    old = jnp.asarray(entry.node.hyperparams[entry.key])
    try:
        new = jnp.broadcast_to(jnp.asarray(value, dtype=old.dtype), old.shape)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"value for {name!r} of shape {jnp.shape(value)} does not broadcast to the stored "
            f"shape {old.shape}"
        ) from e

    check_value("set_hyperparam", name, new)  # as `injected` checks it (a tracer passes)
    entry.node.hyperparams[entry.key] = new
    return repacked(opt_state, new_state)


def scale_hyperparam(opt_state: Any, name: str, factor: Any, *, complement: bool = False) -> Any:
    """Returns `opt_state` with one hyperparameter multiplied by `factor`, scheduled or not.

    What population-based training's "explore" step does to a copied member. A constant is
    scaled in place. A scheduled one has its schedule's state scaled: its current `value`, and
    with it the schedule's `min_value`/`max_value` when it has them, so the rule carries on from
    the new value as if it had been started at a scaled initial value (bounds relative to the
    initial value, the default, stay relative). With `complement=True` only the value moves
    (its complement scaled), clipped to the bounds.

    Args:
      opt_state: any optimizer state holding injected hyperparameters; not modified.
      name: a name as returned by `hyperparams`.
      factor: multiplies the value; broadcasts against it (a `[M]` array scales the members of a
        population-stacked state one by one; 1.0 leaves a member unchanged).
      complement: scale `1 - value` instead (for values in [0, 1) such as Adam's `b1`, `b2`), so
        the result stays below 1.

    Raises:
      ValueError: `name` is unknown, or scheduled by a schedule whose state has no `value` field
        (e.g. `bandit`, or a combinator), which cannot be scaled.
    """
    new_state = unpacked(opt_state)  # fresh containers throughout, edited below
    index = _index(new_state)
    if name not in index:
        raise ValueError(
            f"unknown hyperparameter {name!r}; the state holds: {', '.join(index) or 'none'}"
        )

    def scaled(x: jax.Array) -> jax.Array:
        x32 = jnp.asarray(x, jnp.float32)
        out = 1.0 - (1.0 - x32) * factor if complement else x32 * factor
        return out.astype(jnp.asarray(x).dtype)

    entry = index[name]
    node = entry.node
    schedules = getattr(node, "hyperparams_states", {})
    if entry.key in schedules:
        sched = schedules[entry.key]
        if not (hasattr(sched, "_replace") and hasattr(sched, "value")):
            raise ValueError(
                f"hyperparameter {name!r} follows a schedule whose state "
                f"({type(sched).__name__}) has no current `value` to scale; population-based "
                "training can perturb constants and schedules that hold their value "
                "(kl_target, plateau)"
            )
        value = scaled(sched.value)
        moved = {}
        for bound in ("min_value", "max_value"):
            if hasattr(sched, bound) and not complement:
                moved[bound] = scaled(getattr(sched, bound))
        if complement and hasattr(sched, "min_value"):
            value = jnp.maximum(value, sched.min_value)
        if complement and hasattr(sched, "max_value"):
            value = jnp.minimum(value, sched.max_value)
        check_value("scale_hyperparam", name, value)  # concrete results only
        schedules[entry.key] = sched._replace(value=value.astype(sched.value.dtype), **moved)
        old = jnp.asarray(node.hyperparams[entry.key])
        node.hyperparams[entry.key] = jnp.broadcast_to(value, old.shape).astype(old.dtype)
        return repacked(opt_state, new_state)
    value = scaled(node.hyperparams[entry.key])
    check_value("scale_hyperparam", name, value)  # concrete results only
    node.hyperparams[entry.key] = value
    return repacked(opt_state, new_state)


def bounds(opt_state: Any) -> dict[str, tuple[Any, Any]]:
    """`(min, max)` of every scheduled hyperparameter whose schedule holds bounds in its state
    (`kl_target`, `plateau`...): what "time at a bound" is measured against. Floats for one
    optimizer's state; for a stacked one (a population's `[M]` members, replicas) numpy arrays
    with the state's leading axes, one bound per member, as `hyperparams` keeps them.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from inject_rl import schedules
        >>> from inject_rl.optim import bounds, injected
        >>> lr = schedules.kl_target(1e-3, target=0.01)
        >>> state = injected(optax.adam, learning_rate=lr).init(jnp.zeros(2))
        >>> {k: tuple(round(float(x), 6) for x in v) for k, v in bounds(state).items()}
        {'learning_rate': (1e-06, 0.01)}
    """
    out = {}
    for name, entry in _index(unpacked(opt_state)).items():
        sched = getattr(entry.node, "hyperparams_states", {}).get(entry.key)
        if hasattr(sched, "min_value") and hasattr(sched, "max_value"):
            # It used to read member 0's bounds of a stacked state as everyone's.
            low, high = np.asarray(sched.min_value), np.asarray(sched.max_value)
            out[name] = (float(low), float(high)) if low.ndim == 0 else (low, high)
    return out
