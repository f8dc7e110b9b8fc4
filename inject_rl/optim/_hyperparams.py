"""Reading and overriding injected hyperparameters by name, anywhere in an optimizer state."""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

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
    """Maps each public hyperparameter name to where it lives in `opt_state`."""
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
        opt_state: any optimizer state.

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
    return {name: entry.node.hyperparams[entry.key] for name, entry in _index(opt_state).items()}


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
    index = _index(opt_state)
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

    # Rebuild every container, then edit the fresh copy: the caller's state stays untouched.
    new_state = jax.tree.map(lambda x: x, opt_state)
    _index(new_state)[name].node.hyperparams[entry.key] = new
    return new_state
