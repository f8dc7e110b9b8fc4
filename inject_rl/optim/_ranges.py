"""Range checks of an injected optimizer's numeric hyperparameters, by name (issue 12 item 5).

optax validates none of them: `adam(b2=-1)` trains to all-NaN params and `sgd(momentum=1.5)`
diverges. `injected` checks every value it can read before building the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import optax


class _Range(NamedTuple):
    low: float
    high: float
    low_open: bool
    high_open: bool

    def __str__(self) -> str:
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return f"{lo}{self.low:g}, {self.high:g}{hi}"

    def holds(self, x: float) -> bool:
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below


# Ranges by parameter name, as optax's optimizers use the names (adam, adamw, sgd, rmsprop,
# lion, lamb, ...). eps = 0 is allowed: optax permits it (Adam then divides by sqrt(nu) alone).
RANGES: dict[str, _Range] = {
    "learning_rate": _Range(0.0, math.inf, True, False),
    "b1": _Range(0.0, 1.0, False, True),
    "b2": _Range(0.0, 1.0, False, True),
    "eps": _Range(0.0, math.inf, False, False),
    "eps_root": _Range(0.0, math.inf, False, False),
    "decay": _Range(0.0, 1.0, False, False),  # rmsprop's EMA of squared grads
    "momentum": _Range(0.0, 1.0, False, True),  # None (no momentum) is allowed
    "weight_decay": _Range(0.0, math.inf, False, False),
}
# A schedule's learning rate may start at 0: a warm-up ramps up from there.
_SCHEDULED_LEARNING_RATE = _Range(0.0, math.inf, False, False)


def _initial_value(schedule: Callable[..., Any]) -> Any:
    """The value a schedule starts at, or None when it cannot be read here.

    Read eagerly (also when `injected` is called under a trace); a value computed from traced
    constants (e.g. under `vmap` over the initial value) is a tracer and is not checked.
    """
    try:
        with jax.ensure_compile_time_eval():
            if isinstance(schedule, optax.schedules.StatefulSchedule):
                value = schedule(schedule.init())
            else:
                value = schedule(0)  # an optax step schedule: a function of the count
    except Exception:  # noqa: BLE001 - e.g. a user's schedule whose value needs extra_args
        return None
    return None if isinstance(value, jax.core.Tracer) else value


def _numbers(value: Any) -> np.ndarray | None:
    """`value` as a float64 array when it is a concrete real number or array, else None."""
    if value is None or isinstance(value, bool | np.bool_) or isinstance(value, jax.core.Tracer):
        return None
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - not array-like: nothing to check here
        return None
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        return None
    return array.astype(np.float64)


def _reach(schedule: Any) -> tuple[float, float] | None:
    """`(lowest, highest)` value one of our schedules can take, from the bounds it holds; None
    for a schedule whose range cannot be read (a step schedule, a user's own, traced bounds).

    Read by attribute, as the schedules' reprs show them (this layer imports no schedule):
    bounded rules (`min_value`/`max_value`; `plateau` moves one way only, by its `factor`),
    `progress` (`start_value`/`end_value`), `bandit` (`values`), `constant` (`value`), and the
    wrappers of an inner `schedule`: `clip` clamps it, `warmup` adds its `init_value`,
    `spike_guard` scales it by `min_scale` to 1.
    """

    def span(name: str) -> tuple[float, float] | None:
        """The smallest and largest value of attribute `name` (a population's bounds are
        arrays), or None when it is absent or not a concrete number."""
        v = _numbers(getattr(schedule, name, None))
        return None if v is None or v.size == 0 else (float(v.min()), float(v.max()))

    inner = getattr(schedule, "schedule", None)
    if inner is not None:
        reach = _reach(inner)
        if reach is None:
            return None
        lo, hi = reach
        low, high = span("min_value"), span("max_value")
        if (scale := span("min_scale")) is not None:  # spike_guard
            return min(lo, lo * scale[0]), max(hi, hi * scale[0])
        if low is not None and high is not None:  # clip
            return min(max(lo, low[0]), high[1]), min(max(hi, low[0]), high[1])
        if (start := span("init_value")) is not None:  # warmup
            return min(lo, start[0]), max(hi, start[1])
        return None
    if (values := span("values")) is not None:  # bandit
        return values
    start, end = span("start_value"), span("end_value")
    if start is not None and end is not None:  # progress
        return min(start[0], end[0]), max(start[1], end[1])
    low, high = span("min_value"), span("max_value")
    if low is not None and high is not None:  # kl_target, plateau, hypergradient
        lo, hi = low[0], high[1]
        factor, init = span("factor"), span("init_value")
        if hasattr(schedule, "patience") and factor is not None and init is not None:
            # plateau: a factor below 1 only lowers the value, above 1 only raises it
            lo, hi = (lo, init[1]) if factor[1] < 1 else (init[0], hi)
        return lo, hi
    return span("value")  # constant


def check_value(owner: str, name: str, value: Any) -> None:
    """Raises ValueError when a concrete value of hyperparameter `name` (a `hyperparams()` name:
    its last part is looked up in `RANGES`) is non-finite or out of range; a tracer passes.

    >>> check_value("set_hyperparam", "actor/b2", -1.0)
    Traceback (most recent call last):
    ValueError: set_hyperparam: actor/b2 must be in [0, 1), got actor/b2=-1.0
    """
    array = _numbers(value)
    if array is None or array.size == 0:
        return
    allowed = RANGES.get(name.rsplit("/", 1)[-1])
    ok = bool(np.all(np.isfinite(array)))
    if ok and allowed is not None:
        ok = all(allowed.holds(float(x)) for x in array.ravel())
    if ok:
        return
    shown = array.item() if array.ndim == 0 else array.tolist()
    if allowed is None:
        need = "finite"
    else:
        need = f"in {allowed}" if not math.isinf(allowed.high) else f"finite and {allowed}"
    raise ValueError(f"{owner}: {name} must be {need}, got {name}={shown!r}")


def check_hyperparams(factory: Callable[..., Any], hyperparams: dict[str, Any]) -> None:
    """Raises ValueError when a readable hyperparameter value is non-finite or out of range.

    Numbers and concrete arrays are checked; a schedule by its initial value, where that can be
    read without training signals, and for the names of `RANGES` by the values its bounds let it
    reach (`_reach`: `plateau(0.9, factor=1.05)` may take b1 to its default `max_value` of 900);
    tracers are skipped. Every value must be finite; the names of `RANGES` must also lie in
    their range (a scheduled learning rate may start at 0).

    Raises:
      ValueError: one line, e.g. `adam: b2 must be in [0, 1), got b2=-1.0`.
    """
    owner = getattr(factory, "__name__", repr(factory))
    for name, value in hyperparams.items():
        scheduled = callable(value)
        array = _numbers(_initial_value(value) if scheduled else value)
        if array is None or array.size == 0:
            continue
        allowed = RANGES.get(name)
        if scheduled and name == "learning_rate":
            allowed = _SCHEDULED_LEARNING_RATE
        ok = bool(np.all(np.isfinite(array)))
        if ok and allowed is not None:
            ok = all(allowed.holds(float(x)) for x in array.ravel())
        if ok and scheduled and allowed is not None:
            span = _reach(value)
            bad = [x for x in (span or ()) if not allowed.holds(x)]
            if bad:
                text = repr(value)
                text = text if len(text) <= 60 else text[:57] + "..."
                raise ValueError(
                    f"{owner}: {name} must be in {allowed}, but {text} can reach "
                    f"{name}={bad[0]!r} (a bound or end value of it); keep those within the range"
                )
        if ok:
            continue
        shown = array.item() if array.ndim == 0 else array.tolist()
        got = f"{name}={shown!r}"
        if scheduled:
            text = repr(value)
            text = text if len(text) <= 60 else text[:57] + "..."
            got += f" (the initial value of {text})"
        if allowed is None:
            raise ValueError(f"{owner}: {name} must be finite, got {got}")
        need = f"in {allowed}" if not math.isinf(allowed.high) else f"finite and {allowed}"
        raise ValueError(f"{owner}: {name} must be {need}, got {got}")
