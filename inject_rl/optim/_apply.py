"""Applying gradients with signals: for flax's `TrainState` and for plain params."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax


def apply_gradients(train_state: Any, grads: Any, **signals: Any) -> Any:
    """`train_state.apply_gradients(grads=grads)` for a flax `TrainState`, with `signals` passed
    to its optimizer's `update` as `extra_args` (flax's own method passes none, so a
    signal-driven schedule would raise that its signal is missing).

    Args:
      train_state: a `flax.training.train_state.TrainState` (any object with `params`,
        `opt_state`, `tx`, `step` and `replace`).
      grads: gradients, the structure of `train_state.params`.
      **signals: training signals by name (`kl=...`, `episode_return=...`, ...).

    Returns:
      The new train state (`step` + 1).

    >>> import jax.numpy as jnp, optax
    >>> from flax.training.train_state import TrainState
    >>> from inject_rl import schedules
    >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=schedules.kl_target(0.1))
    >>> ts = TrainState.create(apply_fn=None, params={"w": jnp.ones(2)}, tx=tx)
    >>> for _ in range(2):
    ...     ts = apply_gradients(ts, {"w": jnp.ones(2)}, kl=0.5)
    >>> float(ts.opt_state.hyperparams["learning_rate"])  # KL above target: rate divided by 1.5
    0.0666...
    """
    updates, opt_state = train_state.tx.update(
        grads, train_state.opt_state, train_state.params, **signals
    )
    params = optax.apply_updates(train_state.params, updates)
    return train_state.replace(step=train_state.step + 1, params=params, opt_state=opt_state)


def first_minibatch_only(episode_count: Any, first: Any) -> Any:
    """`episode_count` on the first minibatch of a rollout, 0 on the others.

    When several minibatches (or epochs) train on one rollout, pass this as the
    `episode_count` signal: schedules on episode statistics (`plateau`, `bandit`, `progress`
    on the return) ignore updates with `episode_count == 0`, so each rollout's episodes count
    once instead of once per minibatch (the rule every agent here follows).

    Under `optax.MultiSteps(opt, k)` the inner optimizer (and its schedules) updates once every
    k calls, with the signals of the k-th call only: pass the rollout's count on the call that
    applies the update (`first_minibatch_only(count, mini_step == k - 1)`), or a count of 0 on
    it leaves every return uncounted; a KL or loss schedule there sees the k-th call's value,
    not the mean of the k.

    >>> float(first_minibatch_only(4.0, True)), float(first_minibatch_only(4.0, False))
    (4.0, 0.0)
    """
    return jnp.where(first, episode_count, 0.0)
