"""Machinery shared by the signal-driven schedules: reading a signal, `every` windows, selection.

A schedule reads one named training signal from `extra_args`. This module holds the rules every
schedule obeys (see DESIGN.md "Schedules"), so that they are written once:

* a missing signal is a trace-time error naming the schedule, the key and the keys it got;
* a non-finite value, or an episode statistic with ``episode_count == 0``, is not counted;
* with ``every=k`` the rule acts once per ``k`` counted updates, on their mean (optax's
  ``accumulation_size`` idea).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from inject_rl.signals import EPISODE_STAT_SIGNALS

# Statistics over finished episodes; meaningless (often NaN) when no episode finished in the
# batch, which `episode_count == 0` says.
EPISODE_SIGNALS = EPISODE_STAT_SIGNALS


# A numeric constant of a schedule: a float, or a 0-d array (concrete or traced). Constants live
# in the schedules' state, so `jax.vmap` over e.g. an initial learning rate works.
Scalar = float | jax.Array


class MissingSignalError(ValueError):
    """A schedule did not find the training signal it reads in `extra_args`."""


class Window(NamedTuple):
    """Running sum of the counted signal values since the rule last acted.

    `every` records the window's size as the schedule was built. `accumulate` takes the size
    from the schedule itself (a Python int, fixed when the schedule is built and part of every
    program cache key), so the mean's divisor is a compile-time constant: XLA turns the divide
    into a multiply by the reciprocal that fuses with its users, where a divide by a state value
    was a kernel of its own on CPU each update (issue 16 item 3). The field stays so that a state
    says what it was built with and checkpoints keep their structure.
    """

    total: jax.Array  # shape=(), dtype=float32
    count: jax.Array  # shape=(), dtype=int32
    every: jax.Array  # shape=(), dtype=int32; the `every` the schedule was built with


def f32(x: Any) -> jax.Array:
    """`x` as a float32 array (schedule state and outputs are float32 whatever the params)."""
    return jnp.asarray(x, dtype=jnp.float32)


def i32(x: Any) -> jax.Array:
    """`x` as an int32 array."""
    return jnp.asarray(x, dtype=jnp.int32)


def init_window(every: int) -> Window:
    """An empty window acting every `every` counted updates."""
    return Window(total=f32(0.0), count=i32(0), every=i32(every))


def read_signal(
    owner: str, signal: str, extra_args: Mapping[str, Any]
) -> tuple[jax.Array, jax.Array]:
    """Returns `(value, counted)`: the float32 signal and whether it may be used.

    Args:
      owner: the schedule's name, for the error message.
      signal: the `extra_args` key the schedule reads.
      extra_args: the keyword arguments given to `update`.

    Returns:
      The signal as a float32 scalar and a bool scalar, False when the value is non-finite or
      when it is an episode statistic and `extra_args["episode_count"] == 0`.

    Raises:
      MissingSignalError: `signal` is not a key of `extra_args` (at trace time).
      ValueError: the signal is not a scalar.
    """
    if signal not in extra_args:
        raise MissingSignalError(
            f"{owner}: expected training signal {signal!r} in extra_args, "
            f"got keys {sorted(extra_args)}"
        )
    value = f32(extra_args[signal])
    if value.ndim != 0:
        raise ValueError(
            f"{owner}: signal {signal!r} must be a scalar, got shape {value.shape}; "
            "reduce it (e.g. with inject_rl.signals.sync) before opt.update"
        )
    counted = jnp.isfinite(value)
    if signal in EPISODE_SIGNALS and "episode_count" in extra_args:
        counted &= episode_count(owner, extra_args) > 0
    return jnp.where(counted, value, 0.0), counted


def episode_count(owner: str, extra_args: Mapping[str, Any]) -> jax.Array:
    """`extra_args["episode_count"]`, checked to be a scalar: a per-env vector broadcast the
    schedule's whole state to its shape (each env its own learning rate) without a word.

    Raises:
      ValueError: the count is not a scalar.
    """
    count = jnp.asarray(extra_args["episode_count"])
    if count.ndim != 0:
        raise ValueError(
            f"{owner}: signal 'episode_count' must be a scalar, got shape {count.shape}; "
            "sum it over envs (and devices: inject_rl.signals.sync) before opt.update"
        )
    return count


def accumulate(
    window: Window, value: jax.Array, counted: jax.Array, every: int
) -> tuple[Window, jax.Array, jax.Array]:
    """Adds a counted value to the window.

    Args:
      window: the window before this update; it holds fewer than `every` values, as every
        window that `init_window(every)` and `accumulate` made does.
      value: the signal, as `read_signal` returns it.
      counted: whether the signal counts.
      every: the schedule's window size (a Python int: the mean's divisor is a constant).

    Returns:
      `(window, ready, mean)`: the new window (emptied when `ready`), whether the rule acts on
      this update, and the mean of the window's values (what the rule acts on); the mean is NaN
      when the rule does not act.
    """
    # Written for few kernels per update (issue 16 item 3): XLA updates a loop-carried scalar in
    # place only when every other reader of its old value runs before the write; otherwise it
    # copies the old value first, one kernel more. So only the new count's kernel reads the old
    # count; the rest reads the new one (0 after a counted value: the window is full). The old
    # total is read by `mean`, which the new total uses. `mean` divides by a constant, which XLA
    # rewrites as a multiply by its reciprocal and fuses into each user (a divide by a state
    # value it kept one kernel on CPU: it does not duplicate a divide); on GPU it orders the
    # total's write last. The new count must not read the total, or on GPU the two writes each
    # wait for the other and one old value is copied. `mean`'s sum is spelled unlike the new
    # total's on purpose: XLA would otherwise compute it once, in a kernel of its own.
    value = jnp.where(counted, value, 0.0)
    count = window.count + counted.astype(jnp.int32)
    count = jnp.where(counted & (count >= every), i32(0), count)
    full = counted & (count == 0)
    # A full window holds `every` values (it held fewer before this one). Divided by a constant:
    # bitwise what the divide by the state's `every` gave on CPU, whose divide multiplies by the
    # reciprocal too, and on GPU for a power of two; for another `every` a GPU's mean may now
    # differ from a true quotient in its last bit.
    mean = (jnp.where(full, window.total, jnp.nan) + value) / f32(every)
    ready = ~jnp.isnan(mean)  # == full: a counted value and a window's total are never NaN
    new_window = Window(
        total=jnp.where(ready, f32(0.0), window.total + value),
        count=count,
        every=window.every,
    )
    return new_window, ready, mean


def select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """`jnp.where` over two pytrees of identical structure (keeps dtypes of `on_false`)."""
    return jax.tree.map(
        lambda a, b: jnp.where(pred, a, b).astype(jnp.asarray(b).dtype), on_true, on_false
    )


# ----------------------------------------------------------------------------- validation


def is_traced(x: Any) -> bool:
    """Whether `x` is a tracer (under `jit`, `vmap`, `grad`...): its value cannot be read."""
    return isinstance(x, jax.core.Tracer)


def check_real(owner: str, name: str, value: Any) -> float | jax.Array:
    """A real constant: a float for a number or a concrete 0-d array, a tracer unchanged.

    Constants live in the schedules' state, so a 0-d JAX/numpy array or a tracer works as well
    as a float: a purejaxrl-style script can `vmap` over an initial learning rate. A concrete
    array is read (and then validated) like a float; a tracer cannot be read, so it is kept as
    it is and the range checks skip it.

    Raises:
      TypeError: `value` is neither a real number nor a real 0-d array.
      ValueError: `value` is an array of another shape than `()`.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range
            raise ValueError(
                f"{owner}: {name} is too large for a float, got an integer of "
                f"{len(str(abs(value)))} digits"
            ) from None
    dtype = getattr(value, "dtype", None)
    if not isinstance(value, np.ndarray | jax.Array) or not (
        jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
    ):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    if value.shape != ():
        raise ValueError(f"{owner}: {name} must be a scalar, got an array of shape {value.shape}")
    return value if is_traced(value) else float(value)


def check_range(
    owner: str,
    name: str,
    value: Any,
    low: Any = -math.inf,
    high: Any = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float | jax.Array:
    """Validates `low <(=) value <(=) high` and returns `value` as `check_real` does.

    A value must be finite unless `finite=False` (a bound such as `max_value` may be inf): an
    infinite rate, factor or threshold builds a schedule whose value is inf or NaN. A traced
    `value` is returned unchecked; a traced bound (e.g. another traced argument) leaves its side
    unchecked.

    Raises:
      ValueError: naming the argument, its value and the allowed range.
    """
    v = check_real(owner, name, value)
    if is_traced(v):
        return v
    low = -math.inf if is_traced(low) else low
    high = math.inf if is_traced(high) else high
    if finite and math.isinf(v):
        raise ValueError(f"{owner}: {name} must be finite, got {name}={v!r}")
    bad = (
        math.isnan(v)
        or (v <= low if low_open else v < low)
        or (v >= high if high_open else v > high)
    )
    if bad:
        lo = f"({low}" if low_open else f"[{low}"
        hi = f"{high})" if high_open else f"{high}]"
        shown = value if isinstance(value, numbers.Real) else v
        raise ValueError(f"{owner}: {name} must be in {lo}, {hi}, got {name}={shown!r}")
    return v


def default_bound(owner: str, init_value: Any, scale: float) -> float | jax.Array:
    """A default bound relative to the initial value: `init_value * scale`.

    Bounds follow the value they bound (issue 14 item 2): absolute defaults let a rate fall to
    2e-14 (`plateau`'s floor of 0), or capped every initial value at the same 1e-2. A concrete
    bound is rounded to 12 significant digits so that its repr reads `0.003`, not
    `0.0029999999999999996`; a traced one is kept traced, the product in float32. The two may
    differ in the last bit or two of the float32 bound (`kl_target(1e-3)`'s floor is
    9.99999997e-07 from a number, 1.00000011e-06 from a traced 1e-3): a run `vmap`ped over
    initial values matches separate runs up to that rounding once a bound is reached. Pass
    `min_value` and `max_value` for bounds that are bitwise the same either way.

    Raises:
      ValueError: `init_value` is negative (a relative bound needs a value >= 0).
    """
    v = check_range(owner, "init_value", init_value)
    if is_traced(v):
        return v * scale
    if v < 0:
        shown = init_value if isinstance(init_value, numbers.Real) else v
        raise ValueError(
            f"{owner}: init_value must be >= 0 for the default bounds (relative to it), got "
            f"init_value={shown!r}; or pass min_value and max_value"
        )
    return float(f"{v * scale:.12g}")


def check_bounded(
    owner: str,
    init_value: Any,
    min_value: Any,
    max_value: Any,
    *,
    min_fraction: float,
    max_multiple: float,
    lowest: float = -math.inf,
) -> tuple[Any, Any, Any]:
    """`(init_value, min_value, max_value)` of a bounded rule, validated.

    A bound left None defaults relative to the initial value (`default_bound`: `init_value *
    min_fraction`, `init_value * max_multiple`); then `lowest <= min_value <= max_value` and
    `min_value <= init_value <= max_value` are checked (`check_range`).

    Raises:
      ValueError: naming the bad argument, its value and the allowed range.
    """
    if min_value is None:
        min_value = default_bound(owner, init_value, min_fraction)
    if max_value is None:
        max_value = default_bound(owner, init_value, max_multiple)
    min_value = check_range(owner, "min_value", min_value, lowest, finite=False)
    max_value = check_range(owner, "max_value", max_value, min_value, finite=False)
    init_value = check_range(owner, "init_value", init_value, min_value, max_value)
    return init_value, min_value, max_value


def check_int(owner: str, name: str, value: Any, low: int) -> int:
    """Validates an integer `>= low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {name}={value!r}")
    return int(value)


def check_signal(owner: str, signal: Any) -> str:
    """Validates a signal name (any non-empty string: users may pass their own signals)."""
    if not isinstance(signal, str) or not signal.isidentifier():
        raise ValueError(
            f"{owner}: signal must be an extra_args keyword name such as 'episode_return', "
            f"'kl' or 'loss', got signal={signal!r}"
        )
    return signal


def check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """Validates that `value` is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{owner}: {name} must be one of {allowed}, got {name}={value!r}")
    return value
