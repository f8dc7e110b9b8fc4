"""Move a hyperparameter from a start to an end value as a smoothed training signal progresses."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.schedules import _common as c

_NAME = "progress"


class ProgressState(NamedTuple):
    """State of `progress`; constants live here too, so changing them never recompiles."""

    ema: jax.Array  # shape=(), dtype=float32; debiased EMA of the signal (0 before any)
    seen: jax.Array  # shape=(), dtype=int32; acting updates so far
    window: c.Window  # `every` accumulation of the signal
    start_value: jax.Array  # shape=(), dtype=float32
    end_value: jax.Array  # shape=(), dtype=float32
    low: jax.Array  # shape=(), dtype=float32
    high: jax.Array  # shape=(), dtype=float32
    smoothing: jax.Array  # shape=(), dtype=float32
    log: jax.Array  # shape=(), dtype=float32; 1.0 for log interpolation, 0.0 for linear


class Progress:
    """Stateful schedule interpolating by signal progress. Built by `progress`."""

    def __init__(
        self, start_value, end_value, *, signal, low, high, smoothing, interpolation, every
    ):
        self.signal = c.check_signal(_NAME, signal)
        self.interpolation = c.check_choice(
            _NAME, "interpolation", interpolation, ("linear", "log")
        )
        positive = 0.0 if interpolation == "log" else -math.inf
        self.start_value = c.check_range(
            _NAME, "start_value", start_value, positive, low_open=interpolation == "log"
        )
        self.end_value = c.check_range(
            _NAME, "end_value", end_value, positive, low_open=interpolation == "log"
        )
        self.low = c.check_range(_NAME, "low", low)
        self.high = c.check_range(_NAME, "high", high)
        traced = c.is_traced(self.low) or c.is_traced(self.high)
        if not traced and (self.low == self.high or math.isinf(self.low) or math.isinf(self.high)):
            raise ValueError(
                f"{_NAME}: low and high must be finite and different, got {low=!r}, {high=!r}"
            )
        self.smoothing = c.check_range(_NAME, "smoothing", smoothing, 0.0, 1.0, high_open=True)
        self.every = c.check_int(_NAME, "every", every, 1)

    def __repr__(self) -> str:
        return (
            f"progress({self.start_value}, {self.end_value}, signal={self.signal!r}, "
            f"low={self.low}, high={self.high}, smoothing={self.smoothing}, "
            f"interpolation={self.interpolation!r}, every={self.every})"
        )

    def init(self) -> ProgressState:
        return ProgressState(
            ema=c.f32(0.0),
            seen=c.i32(0),
            window=c.init_window(self.every),
            start_value=c.f32(self.start_value),
            end_value=c.f32(self.end_value),
            low=c.f32(self.low),
            high=c.f32(self.high),
            smoothing=c.f32(self.smoothing),
            log=c.f32(self.interpolation == "log"),
        )

    def update(self, state: ProgressState, **extra_args) -> ProgressState:
        x, counted = c.read_signal(_NAME, self.signal, extra_args)
        window, ready, mean = c.accumulate(state.window, x, counted, self.every)
        # Zero-debiased EMA (as in Adam): seeded by the first value rather than pulled to 0.
        seen = jnp.minimum(state.seen, 2**30) + 1  # saturate: never overflows int32
        weight = (1.0 - state.smoothing) / (1.0 - state.smoothing ** seen.astype(jnp.float32))
        ema = state.ema + weight * (mean - state.ema)
        acted = state._replace(ema=ema, seen=seen)
        return c.select(ready, acted, state)._replace(window=window)

    def __call__(self, state: ProgressState, **extra_args) -> jax.Array:
        del extra_args
        frac = jnp.clip((state.ema - state.low) / (state.high - state.low), 0.0, 1.0)
        frac = jnp.where(state.seen > 0, frac, 0.0)
        linear = state.start_value + frac * (state.end_value - state.start_value)
        # Geometric interpolation; the log branch is only selected when both ends are > 0.
        safe_start = jnp.where(state.log > 0, state.start_value, 1.0)
        safe_end = jnp.where(state.log > 0, state.end_value, 1.0)
        geometric = safe_start * (safe_end / safe_start) ** frac
        return jnp.where(state.log > 0, geometric, linear).astype(jnp.float32)


def progress(
    start_value: c.Scalar,
    end_value: c.Scalar,
    *,
    signal: str = "episode_return",
    low: c.Scalar,
    high: c.Scalar,
    smoothing: c.Scalar = 0.9,
    interpolation: str = "linear",
    every: int = 1,
) -> Progress:
    """The value moves from `start_value` to `end_value` as the smoothed signal goes low → high.

    With `ema` the debiased exponential moving average of the signal (weight `smoothing` on the
    past), `frac = clip((ema - low) / (high - low), 0, 1)` and the value is
    `start + frac * (end - start)` ("linear") or `start * (end / start) ** frac` ("log"). Before
    any counted signal the value is `start_value`. `high < low` is allowed (e.g. a loss falling).
    Typical use: anneal the learning rate, or raise Adam's b1, as the return nears the target.

    Args:
      start_value: value while the signal has not passed `low` on its way to `high` (> 0 for "log").
      end_value: value once the signal reaches `high` (> 0 for "log").
      signal: the `extra_args` key read.
      low: finite signal level where the schedule starts.
      high: finite signal level where the schedule ends, != low.
      smoothing: EMA weight in [0, 1); 0 follows the latest value.
      interpolation: "linear" or "log".
      every: act once per `every` counted updates, on their mean signal.

    Returns:
      A `Progress` satisfying `optax.schedules.StatefulSchedule`.

    Raises:
      ValueError: an argument is outside its allowed range.

    >>> lr = progress(1e-3, 1e-4, low=0.0, high=500.0, smoothing=0.0, interpolation="log")
    >>> state = lr.update(lr.init(), episode_return=250.0, episode_count=3)
    >>> print(f"{float(lr(state)):.3e}")  # halfway, geometrically
    3.162e-04
    """
    return Progress(
        start_value,
        end_value,
        signal=signal,
        low=low,
        high=high,
        smoothing=smoothing,
        interpolation=interpolation,
        every=every,
    )
