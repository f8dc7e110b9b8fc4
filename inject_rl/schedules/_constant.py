"""Leaf schedules (a constant, a wrapped optax step schedule) and coercion to a schedule.

Kept apart from `_common` (which imports no schedule) and from `_combinators` (which wraps
schedules), so that the modules of this package import each other in one direction only.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

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


def constant(value: c.Scalar) -> Constant:
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


def as_schedule(owner: str, schedule: Any) -> optax.schedules.StatefulSchedule:
    """Accepts a stateful schedule, an optax step schedule (callable of count) or a number."""
    if isinstance(schedule, optax.schedules.StatefulSchedule):
        return schedule
    if callable(schedule):
        return from_step_schedule(schedule)
    if isinstance(schedule, numbers.Real | np.ndarray | jax.Array) and not isinstance(
        schedule, bool
    ):
        return constant(schedule)  # validated there: a real number or a real 0-d array
    raise TypeError(
        f"{owner}: schedule must be a StatefulSchedule, an optax step schedule or a number, "
        f"got {type(schedule).__name__}"
    )
