"""`carried`: injected hyperparameters that are not the optimizer's (entropy cost, epsilon...)."""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import optax

from inject_rl.optim._hyperparams import hyperparams


def carried(
    *, hyperparam_dtype: Any = jnp.float32, **hyperparams_: Any
) -> optax.GradientTransformationExtraArgs:
    """A no-op transformation whose state carries injected hyperparameters.

    Chain it after the optimizer to give a loss coefficient (PPO's entropy cost or clip range,
    DQN's epsilon) the same treatment as the learning rate: a constant or a signal-driven
    schedule, updated by `opt.update(..., **signals)`, checkpointed with the optimizer state,
    reported by `hyperparams(opt_state)`, and read back with `current`. A constant lives in the
    state, not in the compiled program, so changing it never recompiles.

    Args:
      hyperparam_dtype: dtype of the stored values (float32).
      **hyperparams_: name -> number, optax step schedule or stateful schedule.

    Returns:
      An `optax.GradientTransformationExtraArgs` that leaves updates unchanged.

    Raises:
      ValueError: no hyperparameters, or a name that is not an identifier.

    >>> import jax.numpy as jnp, optax
    >>> opt = optax.chain(optax.sgd(0.1), carried(ent_coef=0.01))
    >>> state = opt.init(jnp.zeros(2))
    >>> print(f"{float(current(state, 'ent_coef')):.2f}")
    0.01
    """
    if not hyperparams_:
        raise ValueError("carried: give at least one hyperparameter, got none")
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in hyperparams_]

    def factory(**kwargs):
        del kwargs
        return optax.identity()

    factory.__signature__ = inspect.Signature(params)
    factory.__name__ = "carried"
    return optax.inject_hyperparams(factory, hyperparam_dtype=hyperparam_dtype)(**hyperparams_)


def current(opt_state: Any, name: str, default: Any = None) -> jax.Array:
    """The value of the injected hyperparameter `name` that the latest update used (the initial
    value after `init`), or `default` when absent.

    Works under `jit`; use it to read a `carried` coefficient before computing the loss. As
    optax's `inject_hyperparams` stores it, a scheduled value is the one its schedule gave at
    the start of the latest update: a coefficient read this way for the next loss follows its
    signal one update after a learning rate driven by the same signal and schedule.

    Raises:
      ValueError: `name` is absent and no default was given.
    """
    values = hyperparams(opt_state)
    if name in values:
        return values[name]
    if default is None:
        raise ValueError(f"no injected hyperparameter {name!r}; present: {sorted(values)}")
    return jnp.asarray(default, jnp.float32)
