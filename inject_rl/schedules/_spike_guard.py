"""Back a wrapped schedule off when a signal spikes, then recover geometrically."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.schedules import _common as c
from inject_rl.schedules._constant import as_schedule

_NAME = "spike_guard"


class SpikeGuardState(NamedTuple):
    """State of `spike_guard`."""

    inner: Any  # the wrapped schedule's state
    ema: jax.Array  # shape=(), dtype=float32; debiased EMA of the guarded signal
    seen: jax.Array  # shape=(), dtype=int32; finite acting updates so far
    scale: jax.Array  # shape=(), dtype=float32; multiplier in (0, 1] applied to the inner value
    window: c.Window  # `every` accumulation of the signal
    ratio: jax.Array  # shape=(), dtype=float32
    backoff: jax.Array  # shape=(), dtype=float32
    growth: jax.Array  # shape=(), dtype=float32; (1 / backoff) ** (1 / recovery)
    smoothing: jax.Array  # shape=(), dtype=float32
    min_scale: jax.Array  # shape=(), dtype=float32; floor of `scale`


class SpikeGuard:
    """Stateful schedule wrapping another one with spike back-off. Built by `spike_guard`."""

    def __init__(self, schedule, *, signal, ratio, backoff, recovery, smoothing, min_scale, every):
        self.schedule = as_schedule(_NAME, schedule)
        self.signal = c.check_signal(_NAME, signal)
        self.ratio = c.check_range(_NAME, "ratio", ratio, 1.0, low_open=True)
        self.backoff = c.check_range(
            _NAME, "backoff", backoff, 0.0, 1.0, low_open=True, high_open=True
        )
        self.recovery = c.check_int(_NAME, "recovery", recovery, 1)
        self.smoothing = c.check_range(_NAME, "smoothing", smoothing, 0.0, 1.0, high_open=True)
        self.min_scale = c.check_range(_NAME, "min_scale", min_scale, 0.0, 1.0)
        self.every = c.check_int(_NAME, "every", every, 1)

    def __repr__(self) -> str:
        return (
            f"spike_guard({self.schedule!r}, signal={self.signal!r}, ratio={self.ratio}, "
            f"backoff={self.backoff}, recovery={self.recovery}, smoothing={self.smoothing}, "
            f"min_scale={self.min_scale}, every={self.every})"
        )

    def init(self) -> SpikeGuardState:
        return SpikeGuardState(
            inner=self.schedule.init(),
            ema=c.f32(0.0),
            seen=c.i32(0),
            scale=c.f32(1.0),
            window=c.init_window(self.every),
            ratio=c.f32(self.ratio),
            backoff=c.f32(self.backoff),
            growth=c.f32((1.0 / self.backoff) ** (1.0 / self.recovery)),
            smoothing=c.f32(self.smoothing),
            min_scale=c.f32(self.min_scale),
        )

    def update(self, state: SpikeGuardState, **extra_args) -> SpikeGuardState:
        inner = self.schedule.update(state.inner, **extra_args)
        x, counted = c.read_signal(_NAME, self.signal, extra_args)
        raw = c.f32(extra_args[self.signal])
        # A non-finite signal is the worst spike: back off at once, leave the statistics alone.
        # (The only departure from "non-finite leaves the state unchanged"; an episode statistic
        # with episode_count == 0 is still ignored.)
        nonfinite = ~jnp.isfinite(raw)
        if self.signal in c.EPISODE_SIGNALS and "episode_count" in extra_args:
            nonfinite &= c.episode_count(_NAME, extra_args) > 0
        window, ready, mean = c.accumulate(state.window, x, counted, self.every)
        # "Jumps above ratio x EMA", written so that it also makes sense for negative signals.
        limit = state.ema + (state.ratio - 1.0) * jnp.abs(state.ema)
        # Judged once the EMA has its time constant's worth of values (1 / (1 - smoothing), 10
        # at 0.9) and a scale: from an EMA of exactly 0 (PPO's KL on its first minibatch) every
        # positive value was a spike, entered the EMA capped at 0, and the value sat at
        # min_scale for good.
        settled = state.seen.astype(jnp.float32) >= 1.0 / (1.0 - state.smoothing) - 1e-3
        spike = settled & (jnp.abs(state.ema) > 0) & (mean > limit)
        seen = jnp.minimum(state.seen, 2**30) + 1
        weight = (1.0 - state.smoothing) / (1.0 - state.smoothing ** seen.astype(jnp.float32))
        # A spike enters the EMA only up to the limit, so one outlier does not raise the bar,
        # while a lasting shift of the signal's level is still followed.
        tracked = jnp.where(spike, limit, mean)
        ema = state.ema + weight * (tracked - state.ema)
        # Snapped to 1 within a few ulps: growth ** recovery rounds to just below 1 / backoff
        # (0.99999994 after one back-off with recovery=2), one update short of the promise.
        recovered = state.scale * state.growth
        recovered = jnp.where(recovered >= 1.0 - 2.0**-21, 1.0, recovered)
        # Floored (issue 14 item 2): a signal that stays NaN or keeps spiking used to back the
        # value off to 0 (0.5 ** 100 after 100 updates).
        backed_off = jnp.maximum(state.scale * state.backoff, state.min_scale)
        scale = jnp.where(spike, backed_off, recovered)
        acted = state._replace(ema=ema, seen=seen, scale=scale)
        new = c.select(ready, acted, state)
        new = new._replace(
            scale=jnp.where(nonfinite, backed_off, new.scale),
            window=window,
            inner=inner,
        )
        return new

    def __call__(self, state: SpikeGuardState, **extra_args) -> jax.Array:
        return (c.f32(self.schedule(state.inner, **extra_args)) * state.scale).astype(jnp.float32)


def spike_guard(
    schedule: Any,
    *,
    signal: str = "loss",
    ratio: c.Scalar = 3.0,
    backoff: c.Scalar = 0.5,
    recovery: int = 100,
    smoothing: c.Scalar = 0.9,
    min_scale: c.Scalar = 1e-3,
    every: int = 1,
) -> SpikeGuard:
    """Wrap a schedule: scale its value by `backoff` when the signal spikes, then recover.

    A spike is an acting update whose signal exceeds `ratio` x its running EMA (for a negative
    EMA: `ema + (ratio - 1) * |ema|`), or a non-finite signal. Finite spikes are judged once
    the EMA has seen `1 / (1 - smoothing)` acting updates (its time constant: 10 at the default
    0.9, 1 at 0) and while it is not 0: before, it says nothing about the signal's level. Each
    spike multiplies the scale by `backoff`, down to `min_scale`; each acting update without one
    multiplies it by `(1/backoff) ** (1/recovery)`, up to 1, so a single back-off is undone in
    `recovery` updates.
    The wrapped schedule keeps its own state and rule (it receives every `extra_args`).

    Args:
      schedule: a stateful schedule, an optax step schedule, or a constant.
      signal: the guarded `extra_args` key (default the loss).
      ratio: > 1; spike threshold relative to the EMA.
      backoff: in (0, 1); scale applied per spike.
      recovery: >= 1 acting updates to undo one back-off.
      smoothing: EMA weight in [0, 1).
      min_scale: in [0, 1]; the scale never falls below it (default 1e-3: at most a 1000-fold
        back-off; 0 for none).
      every: act once per `every` counted updates, on their mean signal.

    Returns:
      A `SpikeGuard` satisfying `optax.schedules.StatefulSchedule`.

    Raises:
      ValueError: an argument is outside its allowed range.
      TypeError: `schedule` is not a schedule or a number.

    >>> lr = spike_guard(1e-3, ratio=3.0, backoff=0.5, recovery=2, smoothing=0.5)
    >>> state = lr.init()
    >>> for loss in [1.0, 1.0, 10.0]:  # the third is a spike (judged from the 3rd on)
    ...     state = lr.update(state, loss=loss)
    >>> print(f"{float(lr(state)):.1e}")
    5.0e-04
    >>> state = lr.update(lr.update(state, loss=1.0), loss=1.0)  # recovered in 2 updates
    >>> print(f"{float(lr(state)):.1e}")
    1.0e-03
    """
    return SpikeGuard(
        schedule,
        signal=signal,
        ratio=ratio,
        backoff=backoff,
        recovery=recovery,
        smoothing=smoothing,
        min_scale=min_scale,
        every=every,
    )
