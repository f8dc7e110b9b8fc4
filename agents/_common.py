"""What every agent's Config and result share: the result type, host-call arithmetic and eager
config checks."""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
import optax


class TrainResult(NamedTuple):
    """What an agent's `train` returns."""

    params: Any  # trained params (device 0's copy, on the host)
    opt_state: Any  # optimizer state, schedule states included (device 0's copy)
    metrics: dict[str, np.ndarray]  # name -> value per learner iteration (`step`: env steps)
    state: Any  # the full final training state, leading [num_devices] axis on every leaf
    config: Any  # the agent's Config
    compile_s: float  # seconds tracing + compiling the training step
    train_s: float  # seconds in the compiled training calls
    agent: Any = None  # the `Agent` that trained it

    def policy(self, network: Any = None) -> Any:
        """The trained policy, to act on numpy observations (`inject_rl.agents.Policy`);
        `network`: the one given to `train`, if any."""
        from inject_rl.agents._policy import Policy

        return Policy.of(self.agent, self.config, self.params, network=network)


class HostCalls:
    """`num_calls` and `num_iterations` of an agent Config that has `total_steps`,
    `steps_per_iteration` and `iterations_per_call` (a base of every agent's Config)."""

    @property
    def num_calls(self) -> int:
        """Host calls: `total_steps` rounded up to whole calls."""
        per_call = self.steps_per_iteration * self.iterations_per_call
        return max(1, math.ceil(self.total_steps / per_call))

    @property
    def num_iterations(self) -> int:
        return self.num_calls * self.iterations_per_call


def check_config(
    cfg: Any, *, positive_ints=(), nonneg_ints=(), positive=(), unit=(), nonneg=()
) -> None:
    """Eager validation of a frozen Config: one-line ValueError naming the field and range.

    Each group names fields, as a sequence or one space-separated string."""
    name = type(cfg).__module__.rsplit(".", 1)[-1]
    positive_ints, nonneg_ints, positive, unit, nonneg = (
        g.split() if isinstance(g, str) else g
        for g in (positive_ints, nonneg_ints, positive, unit, nonneg)
    )
    for low, group in ((1, positive_ints), (0, nonneg_ints)):
        for f in group:
            v = getattr(cfg, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"{name}: {f} must be an integer >= {low}, got {f}={v!r}")
    for f in positive:
        v = getattr(cfg, f)
        if not _real(v) or not v > 0:
            raise ValueError(f"{name}: {f} must be a number > 0, got {f}={v!r}")
    for f in nonneg:
        v = getattr(cfg, f)
        if not _real(v) or not v >= 0:
            raise ValueError(f"{name}: {f} must be a number >= 0, got {f}={v!r}")
    for f in unit:
        v = getattr(cfg, f)
        if not _real(v) or not 0 <= v <= 1:
            raise ValueError(f"{name}: {f} must be in [0, 1], got {f}={v!r}")


def check_injectable(cfg: Any, **ranges: tuple[float, bool]) -> None:
    """Fields that take a number or a schedule: numbers must be finite and > low (>= low when
    inclusive); None (the agent's default schedule) passes."""
    name = type(cfg).__module__.rsplit(".", 1)[-1]
    for f, (low, inclusive) in ranges.items():
        v = getattr(cfg, f)
        if (
            v is None
            or isinstance(v, optax.schedules.StatefulSchedule)
            or (callable(v) and not _real(v))
        ):
            continue
        if not _real(v) or not (v >= low if inclusive else v > low):
            op = ">=" if inclusive else ">"
            raise ValueError(
                f"{name}: {f} must be a number {op} {low} or a schedule, got {f}={v!r}"
            )


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def per_device(agent: str, cfg: Any, num_devices: int, *fields: str) -> tuple[int, ...]:
    """Each of the config `fields` split evenly over `num_devices`.

    Raises:
      ValueError: a field is not divisible by the number of devices.
    """
    for name in fields:
        if getattr(cfg, name) % num_devices:
            raise ValueError(
                f"{agent}: {name} must be divisible by the number of devices ({num_devices}), "
                f"got {name}={getattr(cfg, name)}"
            )
    return tuple(getattr(cfg, name) // num_devices for name in fields)


def as_schedule(value: Any) -> optax.schedules.StatefulSchedule:
    """A Config value as a StatefulSchedule: a schedule as it is, an optax step schedule (a
    callable of the update count) through `from_step_schedule`, a number as a constant."""
    from inject_rl.schedules import constant, from_step_schedule

    if isinstance(value, optax.schedules.StatefulSchedule):
        return value
    if callable(value):
        return from_step_schedule(value)
    return constant(float(value))
