"""`forward_extra_args`: any optax transformation as one whose `update` takes `extra_args`."""

from __future__ import annotations

import inspect

import optax


def forward_extra_args(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """`tx` as an `optax.GradientTransformationExtraArgs`, forwarding `extra_args` where it can.

    `optax.with_extra_args_support` wraps every transformation that is not already a
    `GradientTransformationExtraArgs` in an update that drops all `extra_args`. That is right for
    an update that takes none, but a plain `GradientTransformation` whose `update` has
    `**kwargs` (`optax.MultiSteps(...).gradient_transformation()`, a user's own wrapper) takes
    them: dropping them starves the schedules inside it of their signals. Such an update is
    kept, with its `extra_args`; any other goes through `with_extra_args_support`. (MultiSteps'
    inner optimizer updates on every k-th call only, with that call's signals: see
    `first_minibatch_only` for the episode count.)

    Args:
      tx: an optax `GradientTransformation` of either kind.

    Returns:
      `tx` itself when it is a `GradientTransformationExtraArgs`, else a wrapper of it.

    >>> import jax.numpy as jnp, optax
    >>> from inject_rl import schedules
    >>> from inject_rl.optim import hyperparams, injected
    >>> opt = optax.MultiSteps(injected(optax.sgd, learning_rate=schedules.kl_target(1.0)), 1)
    >>> tx = forward_extra_args(opt.gradient_transformation())
    >>> state = tx.init(jnp.zeros(2))
    >>> _, state = tx.update(jnp.ones(2), state, kl=jnp.float32(1.0))  # KL far above target
    >>> _, state = tx.update(jnp.ones(2), state, kl=jnp.float32(1.0))
    >>> print(f"{float(hyperparams(state)['learning_rate']):.3f}")  # divided by 1.5 once
    0.667
    """
    if isinstance(tx, optax.GradientTransformationExtraArgs):
        return tx
    try:
        params = inspect.signature(tx.update).parameters.values()
    except (TypeError, ValueError):  # a callable without a readable signature
        params = ()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return optax.GradientTransformationExtraArgs(tx.init, tx.update)
    return optax.with_extra_args_support(tx)
