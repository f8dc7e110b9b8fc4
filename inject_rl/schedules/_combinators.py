"""Combinators: warm-up and clipping around any schedule."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.schedules import _common as c
from inject_rl.schedules._constant import as_schedule


class WarmupState(NamedTuple):
    """State of `warmup`."""

    count: jax.Array  # shape=(), dtype=int32; updates so far (saturating at `steps`)
    inner: Any  # the wrapped schedule's state
    steps: jax.Array  # shape=(), dtype=int32
    init_value: jax.Array  # shape=(), dtype=float32


class Warmup:
    """Linear ramp, then hand-over to another schedule. Built by `warmup`."""

    def __init__(self, schedule, steps, init_value):
        self.schedule = as_schedule("warmup", schedule)
        self.steps = c.check_int("warmup", "steps", steps, 1)
        self.init_value = c.check_range("warmup", "init_value", init_value)

    def __repr__(self) -> str:
        return f"warmup({self.schedule!r}, steps={self.steps}, init_value={self.init_value})"

    def init(self) -> WarmupState:
        return WarmupState(
            count=c.i32(0),
            inner=self.schedule.init(),
            steps=c.i32(self.steps),
            init_value=c.f32(self.init_value),
        )

    def update(self, state: WarmupState, **extra_args) -> WarmupState:
        # The inner schedule starts after the ramp (as optax.join_schedules does); it is traced
        # even during the ramp, so a missing signal is reported at the first trace.
        after = state.count >= state.steps
        inner = c.select(after, self.schedule.update(state.inner, **extra_args), state.inner)
        return state._replace(count=jnp.minimum(state.count + 1, state.steps), inner=inner)

    def __call__(self, state: WarmupState, **extra_args) -> jax.Array:
        target = c.f32(self.schedule(state.inner, **extra_args))
        frac = state.count.astype(jnp.float32) / state.steps.astype(jnp.float32)
        return state.init_value + frac * (target - state.init_value)


def warmup(schedule: Any, steps: int, init_value: c.Scalar = 0.0) -> Warmup:
    """Ramp linearly from `init_value` to `schedule`'s value over `steps` updates, then use it.

    During the ramp the wrapped schedule's state is frozen at its `init()`; it starts updating at
    update `steps`, so a plain step schedule starts at count 0 after the warm-up.

    Args:
      schedule: a stateful schedule, an optax step schedule, or a constant.
      steps: >= 1 warm-up updates.
      init_value: value at update 0.

    Returns:
      A `Warmup` satisfying `optax.schedules.StatefulSchedule`.

    >>> from inject_rl.schedules import kl_target
    >>> lr = warmup(kl_target(1e-3), steps=4)
    >>> state = lr.init()
    >>> for _ in range(2):
    ...     state = lr.update(state, kl=0.01)
    >>> print(f"{float(lr(state)):.1e}")
    5.0e-04
    """
    return Warmup(schedule, steps, init_value)


class ClipState(NamedTuple):
    """State of `clip`."""

    inner: Any  # the wrapped schedule's state
    min_value: jax.Array  # shape=(), dtype=float32
    max_value: jax.Array  # shape=(), dtype=float32


class Clip:
    """Bounds another schedule's value. Built by `clip`."""

    def __init__(self, schedule, min_value, max_value):
        self.schedule = as_schedule("clip", schedule)
        self.min_value = c.check_range("clip", "min_value", min_value, finite=False)
        self.max_value = c.check_range("clip", "max_value", max_value, self.min_value, finite=False)

    def __repr__(self) -> str:
        return f"clip({self.schedule!r}, {self.min_value}, {self.max_value})"

    def init(self) -> ClipState:
        return ClipState(
            inner=self.schedule.init(),
            min_value=c.f32(self.min_value),
            max_value=c.f32(self.max_value),
        )

    def update(self, state: ClipState, **extra_args) -> ClipState:
        return state._replace(inner=self.schedule.update(state.inner, **extra_args))

    def __call__(self, state: ClipState, **extra_args) -> jax.Array:
        value = c.f32(self.schedule(state.inner, **extra_args))
        return jnp.clip(value, state.min_value, state.max_value)


def clip(schedule: Any, min_value: c.Scalar, max_value: c.Scalar) -> Clip:
    """Clip any schedule's value to `[min_value, max_value]`.

    Args:
      schedule: a stateful schedule, an optax step schedule, or a constant.
      min_value: lower bound.
      max_value: upper bound, >= min_value.

    Returns:
      A `Clip` satisfying `optax.schedules.StatefulSchedule`.

    >>> import optax
    >>> s = clip(optax.linear_schedule(0.0, 1.0, 10), 0.2, 0.8)
    >>> print(float(s(s.init())))
    0.2
    """
    return Clip(schedule, min_value, max_value)
