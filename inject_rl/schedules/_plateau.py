"""Multiply a hyperparameter by a factor when a training signal stops improving."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.schedules import _common as c

_NAME = "plateau"
# Default bounds, relative to the initial value: [init / 1000, 1000 * init]. The floor used to be
# 0, which let a halving learning rate fall to 2e-14 (issue 14 item 2).
MIN_FRACTION = 1e-3
MAX_MULTIPLE = 1e3


class PlateauState(NamedTuple):
    """State of `plateau`; constants live here too, so changing them never recompiles."""

    value: jax.Array  # shape=(), dtype=float32; current hyperparameter value
    best: jax.Array  # shape=(), dtype=float32; best score seen (score = sign * signal)
    bad: jax.Array  # shape=(), dtype=int32; consecutive acting updates without improvement
    cooldown_left: jax.Array  # shape=(), dtype=int32
    window: c.Window  # `every` accumulation of the signal
    sign: jax.Array  # shape=(), dtype=float32; +1 for mode="max", -1 for mode="min"
    factor: jax.Array  # shape=(), dtype=float32
    threshold: jax.Array  # shape=(), dtype=float32
    patience: jax.Array  # shape=(), dtype=int32
    cooldown: jax.Array  # shape=(), dtype=int32
    min_value: jax.Array  # shape=(), dtype=float32
    max_value: jax.Array  # shape=(), dtype=float32


class Plateau:
    """Stateful schedule that scales its value when the signal plateaus. Built by `plateau`."""

    def __init__(
        self,
        init_value,
        *,
        signal,
        mode,
        factor,
        patience,
        cooldown,
        threshold,
        min_value,
        max_value,
        every,
    ):
        self.signal = c.check_signal(_NAME, signal)
        self.mode = c.check_choice(_NAME, "mode", mode, ("max", "min"))
        self.factor = c.check_range(_NAME, "factor", factor, 0.0, low_open=True)
        if not c.is_traced(self.factor) and self.factor == 1.0:
            raise ValueError(f"{_NAME}: factor must be > 0 and != 1, got factor={factor!r}")
        self.patience = c.check_int(_NAME, "patience", patience, 1)
        self.cooldown = c.check_int(_NAME, "cooldown", cooldown, 0)
        self.threshold = c.check_range(_NAME, "threshold", threshold, 0.0)
        self.init_value, self.min_value, self.max_value = c.check_bounded(
            _NAME,
            init_value,
            min_value,
            max_value,
            min_fraction=MIN_FRACTION,
            max_multiple=MAX_MULTIPLE,
        )
        self.every = c.check_int(_NAME, "every", every, 1)

    def __repr__(self) -> str:
        return (
            f"plateau({self.init_value}, signal={self.signal!r}, mode={self.mode!r}, "
            f"factor={self.factor}, patience={self.patience}, cooldown={self.cooldown}, "
            f"threshold={self.threshold}, min_value={self.min_value}, "
            f"max_value={self.max_value}, every={self.every})"
        )

    def init(self) -> PlateauState:
        return PlateauState(
            value=c.f32(self.init_value),
            best=c.f32(-jnp.inf),
            bad=c.i32(0),
            cooldown_left=c.i32(0),
            window=c.init_window(self.every),
            sign=c.f32(1.0 if self.mode == "max" else -1.0),
            factor=c.f32(self.factor),
            threshold=c.f32(self.threshold),
            patience=c.i32(self.patience),
            cooldown=c.i32(self.cooldown),
            min_value=c.f32(self.min_value),
            max_value=c.f32(self.max_value),
        )

    def update(self, state: PlateauState, **extra_args) -> PlateauState:
        x, counted = c.read_signal(_NAME, self.signal, extra_args)
        window, ready, mean = c.accumulate(state.window, x, counted, self.every)
        score = state.sign * mean
        # Relative improvement over the best seen; the first value always improves.
        improved = jnp.isneginf(state.best) | (
            score > state.best + state.threshold * jnp.abs(state.best)
        )
        best = jnp.where(improved, score, state.best)
        in_cooldown = state.cooldown_left > 0
        # As in torch's ReduceLROnPlateau, updates during cooldown never count as bad.
        bad = jnp.where(improved | in_cooldown, 0, state.bad + 1)
        cooldown_left = jnp.maximum(state.cooldown_left - 1, 0)
        scale = bad >= state.patience
        value = jnp.where(
            scale,
            jnp.clip(state.value * state.factor, state.min_value, state.max_value),
            state.value,
        )
        acted = state._replace(
            value=value,
            best=best,
            bad=jnp.where(scale, 0, bad),
            cooldown_left=jnp.where(scale, state.cooldown, cooldown_left),
        )
        return c.select(ready, acted, state)._replace(window=window)

    def __call__(self, state: PlateauState, **extra_args) -> jax.Array:
        del extra_args
        return state.value


def plateau(
    init_value: c.Scalar,
    *,
    signal: str = "episode_return",
    mode: str = "max",
    factor: c.Scalar = 0.5,
    patience: int = 10,
    cooldown: int = 0,
    threshold: c.Scalar = 1e-4,
    min_value: c.Scalar | None = None,
    max_value: c.Scalar | None = None,
    every: int = 1,
) -> Plateau:
    """Scale the value by `factor` when the signal stops improving (ReduceLROnPlateau).

    After `patience` consecutive acting updates whose signal does not improve by more than
    `threshold` (relative) on the best seen, the value becomes `clip(value * factor, min_value,
    max_value)`; the next `cooldown` acting updates never count as bad. `mode="min"` for signals
    where lower is better (losses). `factor > 1` grows the value on a plateau (e.g. Adam's `b1`).
    Unlike `optax.contrib.reduce_on_plateau`, which scales updates, this is a schedule: it can
    drive any injected hyperparameter, b1 and b2 included.

    Args:
      init_value: starting value, within `[min_value, max_value]`.
      signal: the `extra_args` key read (default the mean return of finished episodes).
      mode: "max" (higher is better) or "min".
      factor: > 0 and != 1.
      patience: >= 1 acting updates without improvement before scaling.
      cooldown: >= 0 acting updates ignored after each scaling.
      threshold: >= 0 relative improvement needed to count as better.
      min_value: lower clip; None (default): `init_value / 1000` (needs `init_value >= 0`).
      max_value: upper clip, >= min_value; None (default): `1000 * init_value`. Pass it when
        `factor > 1` drives a bounded hyperparameter (e.g. `max_value=0.99` for Adam's b1).
      every: act once per `every` counted updates, on their mean signal.

    Returns:
      A `Plateau` satisfying `optax.schedules.StatefulSchedule`.

    Raises:
      ValueError: an argument is outside its allowed range.

    >>> lr = plateau(1e-3, patience=2, factor=0.5)
    >>> state = lr.init()
    >>> for ret in [10.0, 9.0, 8.0]:  # best 10, then two updates without improvement
    ...     state = lr.update(state, episode_return=ret, episode_count=4)
    >>> print(f"{float(lr(state)):.1e}")
    5.0e-04
    """
    return Plateau(
        init_value,
        signal=signal,
        mode=mode,
        factor=factor,
        patience=patience,
        cooldown=cooldown,
        threshold=threshold,
        min_value=min_value,
        max_value=max_value,
        every=every,
    )
