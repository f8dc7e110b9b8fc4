"""`update_alignment`: how well this step's descent direction agrees with the previous update.

The signal of hypergradient descent (Baydin et al. 2018, "Online Learning Rate Adaptation with
Hypergradient Descent"): the derivative of the loss with respect to the learning rate is
`-g_t . u_{t-1} / lr`, the current gradient against the previous update. Its multiplicative form
only needs the cosine, which is scale-free (`inject_rl.schedules.hypergradient`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from inject_rl.optim._extra_args import forward_extra_args

# The extra_args key the wrapper adds (read by `inject_rl.schedules.hypergradient`).
UPDATE_COS = "update_cos"


class UpdateAlignmentState(NamedTuple):
    """State of `update_alignment`: the last update and the wrapped optimizer's state."""

    # The update `inner` returned on the previous step (zeros after `init`): the params'
    # structure, shapes and dtypes.
    last_update: Any
    # `inner`'s state. The field name is one `inject_rl.optim.hyperparams` leaves out of
    # qualified names, so the wrapped hyperparameters keep the names they had unwrapped.
    inner_state: Any


def descent_cosine(grads: Any, last_update: Any) -> jax.Array:
    """`cos(-grads, last_update)` over whole pytrees, as a float32 scalar.

    Positive when a step along `-grads` continues the last update (the rate was too small to
    finish the descent it started), negative when it turns back (the last step overshot). 0
    where the cosine is undefined: either vector zero (the first step: no previous update) or
    non-finite, so that the signal is never NaN. Computed in float32 whatever the dtypes.

    >>> print(descent_cosine({"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([-2.0, 0.0])}))
    1.0
    >>> print(descent_cosine({"w": jnp.ones(2)}, {"w": jnp.zeros(2)}))
    0.0
    """

    def f32(tree):
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)

    def max_abs(tree):
        leaves = [jnp.max(jnp.abs(x), initial=0.0) for x in jax.tree.leaves(tree)]
        return jnp.max(jnp.stack(leaves)) if leaves else jnp.zeros((), jnp.float32)

    def total(fn, *trees):
        leaves = jax.tree.leaves(jax.tree.map(lambda *x: jnp.sum(fn(*x)), *trees))
        return sum(leaves, jnp.zeros((), jnp.float32))

    # Each vector divided by its largest entry first (the cosine is unchanged): squares of large
    # gradients do not overflow, nor do those of a small rate's tiny updates flush to zero.
    g, u = f32(grads), f32(last_update)
    g_max, u_max = max_abs(g), max_abs(u)
    defined = jnp.isfinite(g_max) & jnp.isfinite(u_max) & (g_max > 0.0) & (u_max > 0.0)
    g = jax.tree.map(lambda x: x / jnp.where(defined, g_max, 1.0), g)
    u = jax.tree.map(lambda x: x / jnp.where(defined, u_max, 1.0), u)
    dot = total(jnp.multiply, g, u)
    norms = jnp.sqrt(total(jnp.square, g)) * jnp.sqrt(total(jnp.square, u))
    cos = -dot / jnp.where(defined, norms, 1.0)
    # Rounding can take |cos| a hair above 1. (A NaN entry already makes its vector's max NaN.)
    return jnp.where(defined & jnp.isfinite(cos), jnp.clip(cos, -1.0, 1.0), 0.0)


def update_alignment(
    inner: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
    """Wraps `inner` so that its `update` also receives `update_cos`, the alignment signal.

    On each step it computes `update_cos = cos(-g_t, u_{t-1})` between the current descent
    direction (the gradient it receives, negated) and the update `inner` returned on the previous
    step (see `descent_cosine`): near 1 when successive steps keep going the same way, near -1
    when a step undoes the last. It calls `inner.update(grads, ..., update_cos=..., **extra_args)`
    with every extra arg it received, and keeps the new update for the next step. With Adam the
    previous update is the Adam direction, as in Baydin et al.'s Adam-HD (their hypergradient is
    `g_t . m_hat / (sqrt(v_hat) + eps)`).

    It is a pure function of the gradients and its state, so it works under `jit`, `vmap` (one
    signal per population member) and `pmap`/`shard_map`: the learner averages the gradients over
    devices before `update`, so every replica computes the same cosine and replicas stay
    identical. The state holds one more copy of the params' size.

    Args:
      inner: the optimizer, e.g. `inject_rl.optim.injected(optax.adam,
        learning_rate=inject_rl.schedules.hypergradient(1e-3))` or any
        `optax.inject_hyperparams` optimizer; a plain `GradientTransformation` is accepted too
        (it then ignores the signal).

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is an `UpdateAlignmentState`;
      `inject_rl.optim.hyperparams` reads the wrapped hyperparameters by their unwrapped names.

    Raises:
      TypeError: `inner` is not an optax `GradientTransformation`.
      ValueError: (at trace time) `update` was given an `update_cos` extra arg already.

    >>> import optax
    >>> from inject_rl import schedules
    >>> from inject_rl.optim import hyperparams, injected
    >>> lr = schedules.hypergradient(0.1, beta=0.5)
    >>> opt = update_alignment(injected(optax.sgd, learning_rate=lr))
    >>> params = jnp.array([4.0])
    >>> state = opt.init(params)
    >>> for _ in range(3):  # downhill on x**2; cosines 0 (no previous update), 1, 1
    ...     updates, state = opt.update(2 * params, state, params)
    ...     params = optax.apply_updates(params, updates)
    >>> print(f"{float(hyperparams(state)['learning_rate']):.3f}")  # the 3rd step's: 0.1 x 1.5
    0.150
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            "update_alignment: inner must be an optax GradientTransformation, "
            f"got {type(inner).__name__}"
        )
    inner = forward_extra_args(inner)

    def init_fn(params: Any) -> UpdateAlignmentState:
        return UpdateAlignmentState(
            last_update=jax.tree.map(jnp.zeros_like, params), inner_state=inner.init(params)
        )

    def update_fn(updates, state: UpdateAlignmentState, params=None, **extra_args):
        if UPDATE_COS in extra_args:
            raise ValueError(
                f"update_alignment: extra_args already hold {UPDATE_COS!r}, which it computes; "
                "wrap the optimizer once"
            )
        cos = descent_cosine(updates, state.last_update)
        new_updates, inner_state = inner.update(
            updates, state.inner_state, params, **extra_args, **{UPDATE_COS: cos}
        )
        # Stored in the state's own dtypes, so the state can be a `lax.scan` carry.
        last = jax.tree.map(lambda u, old: u.astype(old.dtype), new_updates, state.last_update)
        return new_updates, UpdateAlignmentState(last_update=last, inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
