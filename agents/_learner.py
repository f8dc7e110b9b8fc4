"""The learner step every agent trains through: the project's core contract, written once.

Gradients and the loss's signals are averaged over devices (one all-reduce), the episode
statistics join them, `opt.update(grads, opt_state, params, **signals)` runs with every signal as
`extra_args`, and the update is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from inject_rl import loops
from inject_rl.optim import first_minibatch_only, hyperparams
from inject_rl.signals import SIGNAL_NAMES, sync_and_pmean


def learner_step(
    loss_fn: Callable[..., tuple[jax.Array, dict[str, jax.Array]]],
    opt: optax.GradientTransformationExtraArgs,
    params: Any,
    opt_state: Any,
    *loss_args: Any,
    episodes: Mapping[str, jax.Array],
    first: jax.Array | bool,
    step: jax.Array,
    axis_name: str | None,
    sync_episodes: bool = False,
) -> tuple[Any, Any, dict[str, jax.Array]]:
    """One gradient step of `loss_fn(params, *loss_args) -> (loss, aux)`.

    Args:
      loss_fn: the loss; `aux` holds its signals by their names in `SIGNAL_NAMES` (`loss`,
        `kl`, `entropy`...) and any other metrics (reported, not passed to the optimizer).
      opt: the optimizer; `update` gets every signal as keyword `extra_args`.
      params, opt_state: the learner's.
      *loss_args: the rest of `loss_fn`'s arguments (a minibatch...).
      episodes: the synced `episode_return`, `episode_length`, `episode_count` of the batch.
      first: whether this is the first step on this batch of env steps. Later steps report
        `episode_count = 0`, so a schedule on the return sees each batch's episodes once, however
        many minibatches or epochs train on it (the rule for your own loop, too).
      step: env steps so far (the `step` signal).
      axis_name: the device axis to average over (None: one device, no collective).
      sync_episodes: `episodes` are this device's, not yet synced: they are synced here, in the
        gradients' all-reduce (`signals.sync_and_pmean`), so the step that syncs them still
        costs one all-reduce; the metrics then carry the synced `episode_*` values.

    Returns:
      `(params, opt_state, metrics)`: the metrics are `aux` (device-averaged) and `grad_norm`,
      and with `sync_episodes` the synced episode statistics.
    """
    grads, aux = jax.grad(loss_fn, has_aux=True)(params, *loss_args)
    if sync_episodes:
        episodes, (grads, aux) = sync_and_pmean(episodes, (grads, aux), axis_name)
        aux = {**aux, **episodes}
    else:
        grads, aux = loops.pmean((grads, aux), axis_name)
    grad_norm = optax.tree.norm(grads)
    signals = {k: v for k, v in aux.items() if k in SIGNAL_NAMES}
    signals.update(
        grad_norm=grad_norm,
        episode_return=episodes["episode_return"],
        episode_length=episodes["episode_length"],
        episode_count=first_minibatch_only(episodes["episode_count"], first),
        step=step,
    )
    updates, opt_state = opt.update(grads, opt_state, params, **signals)
    return optax.apply_updates(params, updates), opt_state, {**aux, "grad_norm": grad_norm}


def coefficient(opt_state: Any, cfg: Any, name: str) -> jax.Array:
    """A loss coefficient (`ent_coef`, `clip_eps`): its injected value when the optimizer carries
    it (`inject_rl.optim.carried`), else the Config's number.

    Raises:
      ValueError: the Config holds a schedule that the optimizer does not carry.
    """
    values = hyperparams(opt_state)
    if name in values:
        return values[name]
    value = getattr(cfg, name)
    if isinstance(value, optax.schedules.StatefulSchedule) or callable(value):
        raise ValueError(
            f"a {name} schedule needs the optimizer to carry it; chain "
            f"inject_rl.optim.carried({name}=...) into your optimizer"
        )
    return jnp.asarray(value, jnp.float32)


def hp_metrics(opt_state: Any) -> dict[str, jax.Array]:
    """`hp/<name>` for every injected hyperparameter (empty for a plain optimizer)."""
    return {f"hp/{k}": v for k, v in hyperparams(opt_state).items()}
