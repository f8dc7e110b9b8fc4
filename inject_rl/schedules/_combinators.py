"""Combinators: constants, optax step schedules, warm-up and clipping around any schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.schedules import _common as c


class ConstantState(NamedTuple):
    """State of `constant`: the value lives in the state, so changing it never recompiles."""

    value: jax.Array  # shape=(), dtype=float32


class Constant:
    """A fixed value as a stateful schedule. Built by `constant`."""

    def __init__(self, value):
        self.value = c.check_range("constant", "value", value)

    def __repr__(self) -> str:
        return f"constant({self.value})"

    def init(self) -> ConstantState:
        return ConstantState(value=c.f32(self.value))

    def update(self, state: ConstantState, **extra_args) -> ConstantState:
        del extra_args
        return state

    def __call__(self, state: ConstantState, **extra_args) -> jax.Array:
        del extra_args
        return state.value


def constant(value: float) -> Constant:
    """A constant as a stateful schedule whose value sits in the state.

    `optax.inject_hyperparams` already stores plain numbers in its state; `constant` is for the
    combinators (`warmup(constant(3e-4), 100)`) and keeps its value float32 whatever the params.

    >>> s = constant(3e-4)
    >>> print(float(s(s.update(s.init(), kl=1.0))))
    0.0003
    """
    return Constant(value)


class StepState(NamedTuple):
    """State of `from_step_schedule`."""

    count: jax.Array  # shape=(), dtype=int32; updates so far (saturating)


class FromStepSchedule:
    """An optax step schedule (a function of the update count) as a stateful schedule."""

    def __init__(self, fn: Callable[[jax.Array], Any]):
        if not callable(fn):
            raise TypeError(f"from_step_schedule: fn must be callable, got {fn!r}")
        self.fn = fn

    def __repr__(self) -> str:
        return f"from_step_schedule({getattr(self.fn, '__name__', self.fn)!r})"

    def init(self) -> StepState:
        return StepState(count=c.i32(0))

    def update(self, state: StepState, **extra_args) -> StepState:
        del extra_args
        # Saturate like optax.safe_increment instead of wrapping around to negative counts.
        return StepState(count=jnp.where(state.count < 2**31 - 1, state.count + 1, state.count))

    def __call__(self, state: StepState, **extra_args) -> jax.Array:
        del extra_args
        return c.f32(self.fn(state.count))


def from_step_schedule(fn: Callable[[jax.Array], Any]) -> FromStepSchedule:
    """Wrap an optax step schedule (`count -> value`) as a float32 stateful schedule.

    Args:
      fn: e.g. `optax.cosine_decay_schedule(1e-3, 1000)`.

    Returns:
      A `FromStepSchedule` satisfying `optax.schedules.StatefulSchedule`.

    >>> import optax
    >>> s = from_step_schedule(optax.linear_schedule(1.0, 0.0, 10))
    >>> state = s.init()
    >>> for _ in range(5):
    ...     state = s.update(state)
    >>> print(float(s(state)))
    0.5
    """
    return FromStepSchedule(fn)


class WarmupState(NamedTuple):
    """State of `warmup`."""

    count: jax.Array  # shape=(), dtype=int32; updates so far (saturating at `steps`)
    inner: Any  # the wrapped schedule's state
    steps: jax.Array  # shape=(), dtype=int32
    init_value: jax.Array  # shape=(), dtype=float32


class Warmup:
    """Linear ramp, then hand-over to another schedule. Built by `warmup`."""

    def __init__(self, schedule, steps, init_value):
        self.schedule = c.as_schedule("warmup", schedule)
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


def warmup(schedule: Any, steps: int, init_value: float = 0.0) -> Warmup:
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
        self.schedule = c.as_schedule("clip", schedule)
        self.min_value = c.check_range("clip", "min_value", min_value)
        self.max_value = c.check_range("clip", "max_value", max_value, self.min_value)

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


def clip(schedule: Any, min_value: float, max_value: float) -> Clip:
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
