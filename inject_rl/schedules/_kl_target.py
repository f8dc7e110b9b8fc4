"""The adaptive-KL learning-rate rule of rsl_rl / brax / rl_games, as an optax stateful schedule."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.schedules import _common as c

_NAME = "kl_target"
# Default bounds, relative to the initial value: [init / 1000, 10 * init]. At PPO's 1e-3 these are
# the absolute 1e-6 and 1e-2 that were the defaults before (issue 14 item 2).
MIN_FRACTION = 1e-3
MAX_MULTIPLE = 10.0


class KLTargetState(NamedTuple):
    """State of `kl_target`; constants live here too, so changing them never recompiles."""

    value: jax.Array  # shape=(), dtype=float32; current hyperparameter value
    window: c.Window  # `every` accumulation of the KL signal
    target: jax.Array  # shape=(), dtype=float32
    tolerance: jax.Array  # shape=(), dtype=float32
    factor: jax.Array  # shape=(), dtype=float32
    min_value: jax.Array  # shape=(), dtype=float32
    max_value: jax.Array  # shape=(), dtype=float32


class KLTarget:
    """Stateful schedule: divide by `factor` when KL is too high, multiply when too low.

    Built by `kl_target`; see there.
    """

    def __init__(
        self, init_value, *, target, signal, tolerance, factor, min_value, max_value, every
    ):
        # rsl_rl/brax bounds at lr 1e-3: [1e-6, 1e-2]
        self.init_value, self.min_value, self.max_value = c.check_bounded(
            _NAME,
            init_value,
            min_value,
            max_value,
            min_fraction=MIN_FRACTION,
            max_multiple=MAX_MULTIPLE,
            lowest=0.0,
        )
        self.target = c.check_range(_NAME, "target", target, 0.0, low_open=True)
        self.tolerance = c.check_range(_NAME, "tolerance", tolerance, 1.0, low_open=True)
        self.factor = c.check_range(_NAME, "factor", factor, 1.0, low_open=True)
        self.signal = c.check_signal(_NAME, signal)
        self.every = c.check_int(_NAME, "every", every, 1)

    def __repr__(self) -> str:
        return (
            f"kl_target({self.init_value}, target={self.target}, signal={self.signal!r}, "
            f"tolerance={self.tolerance}, factor={self.factor}, min_value={self.min_value}, "
            f"max_value={self.max_value}, every={self.every})"
        )

    def init(self) -> KLTargetState:
        return KLTargetState(
            value=c.f32(self.init_value),
            window=c.init_window(self.every),
            target=c.f32(self.target),
            tolerance=c.f32(self.tolerance),
            factor=c.f32(self.factor),
            min_value=c.f32(self.min_value),
            max_value=c.f32(self.max_value),
        )

    def update(self, state: KLTargetState, **extra_args) -> KLTargetState:
        kl, counted = c.read_signal(_NAME, self.signal, extra_args)
        window, ready, mean_kl = c.accumulate(state.window, kl, counted, self.every)
        value = state.value
        # rsl_rl/brax: kl > 2*target -> lr / 1.5; 0 < kl < target/2 -> lr * 1.5.
        too_high = mean_kl > state.tolerance * state.target
        too_low = (mean_kl > 0.0) & (mean_kl < state.target / state.tolerance)
        new_value = jnp.where(too_high, value / state.factor, value)
        new_value = jnp.where(too_low, value * state.factor, new_value)
        new_value = jnp.clip(new_value, state.min_value, state.max_value)
        return state._replace(value=jnp.where(ready, new_value, value), window=window)

    def __call__(self, state: KLTargetState, **extra_args) -> jax.Array:
        del extra_args
        return state.value


def kl_target(
    init_value: c.Scalar,
    *,
    target: c.Scalar = 0.01,
    signal: str = "kl",
    tolerance: c.Scalar = 2.0,
    factor: c.Scalar = 1.5,
    min_value: c.Scalar | None = None,
    max_value: c.Scalar | None = None,
    every: int = 1,
) -> KLTarget:
    """The adaptive-KL rule (rsl_rl, brax, rl_games) as an `optax` stateful schedule.

    On each acting update, with `kl` the mean signal of the last `every` counted updates:
    `kl > tolerance * target` → value / factor; `0 < kl < target / tolerance` → value * factor;
    the result is clipped to `[min_value, max_value]`. Brax edits `opt_state.hyperparams` by hand
    for this; here it is an ordinary schedule for `optax.inject_hyperparams`.

    Args:
      init_value: starting value, within `[min_value, max_value]`.
      target: desired KL between the behaviour and the updated policy, > 0.
      signal: the `extra_args` key holding the KL.
      tolerance: > 1; the band `[target / tolerance, target * tolerance]` leaves the value alone.
      factor: > 1; multiplicative step.
      min_value: lower clip, >= 0; None (default): `init_value / 1000`.
      max_value: upper clip, >= min_value; None (default): `10 * init_value` (so 1e-2 for
        PPO's 1e-3, the cap rsl_rl and brax use).
      every: act once per `every` counted updates on their mean KL (e.g. the number of PPO
        minibatches, so the rule acts once per epoch on the epoch's mean KL).

    Returns:
      A `KLTarget` satisfying `optax.schedules.StatefulSchedule`.

    Raises:
      ValueError: an argument is outside its allowed range.

    >>> import optax
    >>> lr = kl_target(1e-3, target=0.01)
    >>> state = lr.update(lr.init(), kl=0.05)  # KL far above target: lr / 1.5
    >>> print(f"{float(lr(state)):.3e}")
    6.667e-04
    >>> opt = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    """
    return KLTarget(
        init_value,
        target=target,
        signal=signal,
        tolerance=tolerance,
        factor=factor,
        min_value=min_value,
        max_value=max_value,
        every=every,
    )
