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


# Limits every agent's Config is held to (`check_config`), so that a mistyped size is refused
# with one line before anything is allocated, instead of an OverflowError, a cryptic XLA error
# or RESOURCE_EXHAUSTED minutes later:
MAX_INT = 2**31 - 1  # every integer field: counters and sizes are int32 inside the programs
MAX_SEED = 2**31 - 1  # seeds in [0, MAX_SEED]: gymnasium refuses negative seeds on host envs
MAX_STEPS_PER_ITERATION = 2**22  # env steps per iteration (num_envs x rollout_len/train_every)
MAX_BATCH_SIZE = 2**22  # transitions per learner step (replay agents' batch_size)
MAX_BUFFER_SIZE = 2**24  # replay capacity in transitions
MAX_ITERATIONS_PER_CALL = 2**20  # iterations per host call (metrics are stacked per iteration)
MAX_WIDTH = 2**14  # units per hidden layer
MAX_LAYERS = 64  # hidden layers
MAX_EVAL_EPISODES = 10_000  # greedy evaluation episodes (parallel envs; the CLI's too)
_SIZES = (  # field, limit, what it counts
    ("steps_per_iteration", MAX_STEPS_PER_ITERATION, "env steps per iteration"),
    ("batch_size", MAX_BATCH_SIZE, "transitions per learner step"),
    ("buffer_size", MAX_BUFFER_SIZE, "replay transitions"),
    ("iterations_per_call", MAX_ITERATIONS_PER_CALL, "iterations per host call"),
    ("eval_episodes", MAX_EVAL_EPISODES, "evaluation episodes"),
)


def check_config(
    cfg: Any, *, positive_ints=(), nonneg_ints=(), positive=(), unit=(), nonneg=()
) -> None:
    """Eager validation of a frozen Config: one-line ValueError naming the field and range.

    Each group names fields, as a sequence or one space-separated string. Whatever the groups,
    fields the Config has are held to the limits above: integers up to `MAX_INT`, `seed` in
    [0, MAX_SEED], `hidden` a non-empty sequence of at most MAX_LAYERS widths in [1, MAX_WIDTH],
    `vectorization` one the host loop runs, `normalize_obs` and `normalize_reward` booleans,
    `log_std_init` in [-20, 20], and the sizes `steps_per_iteration`, `batch_size`,
    `buffer_size`, `iterations_per_call` and `eval_episodes` up to their maxima.
    """
    name = type(cfg).__module__.rsplit(".", 1)[-1]
    positive_ints, nonneg_ints, positive, unit, nonneg = (
        g.split() if isinstance(g, str) else g
        for g in (positive_ints, nonneg_ints, positive, unit, nonneg)
    )
    for low, group in ((1, positive_ints), (0, nonneg_ints)):
        for f in group:
            v = getattr(cfg, f)
            if not _int(v) or not low <= v <= MAX_INT:
                raise ValueError(
                    f"{name}: {f} must be an integer in [{low}, {MAX_INT}], got {f}={_show(v)}"
                )
    for f in positive:
        v = getattr(cfg, f)
        if not _real(v) or not v > 0:
            raise ValueError(f"{name}: {f} must be a finite number > 0, got {f}={_show(v)}")
    for f in nonneg:
        v = getattr(cfg, f)
        if not _real(v) or not v >= 0:
            raise ValueError(f"{name}: {f} must be a finite number >= 0, got {f}={_show(v)}")
    for f in unit:
        v = getattr(cfg, f)
        if not _real(v) or not 0 <= v <= 1:
            raise ValueError(f"{name}: {f} must be a number in [0, 1], got {f}={_show(v)}")
    _check_common(cfg, name)


def _check_common(cfg: Any, name: str) -> None:
    """The checks of `check_config` on fields found by name (`seed`, `hidden`, the host
    loop's `vectorization`, the normalisation flags, `log_std_init`, sizes)."""
    if hasattr(cfg, "seed"):
        v = cfg.seed
        if not _int(v) or not 0 <= v <= MAX_SEED:
            raise ValueError(
                f"{name}: seed must be an integer in [0, {MAX_SEED}], got seed={_show(v)}"
            )
    if hasattr(cfg, "hidden"):
        v = cfg.hidden
        if (
            not isinstance(v, tuple | list)
            or not 1 <= len(v) <= MAX_LAYERS
            or not all(_int(h) and 1 <= h <= MAX_WIDTH for h in v)
        ):
            raise ValueError(
                f"{name}: hidden must be a non-empty list of at most {MAX_LAYERS} layer widths, "
                f"integers in [1, {MAX_WIDTH}] (e.g. [64, 64]), got hidden={_show(v)}"
            )
    if hasattr(cfg, "vectorization"):
        check_vectorization(cfg, name)
    for flag in ("normalize_obs", "normalize_reward"):
        if hasattr(cfg, flag) and not isinstance(getattr(cfg, flag), bool):
            raise ValueError(
                f"{name}: {flag} must be true or false, got {flag}={getattr(cfg, flag)!r}"
            )
    if hasattr(cfg, "log_std_init"):
        v = cfg.log_std_init
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not -20.0 <= v <= 20.0:
            raise ValueError(f"{name}: log_std_init must be a number in [-20, 20], got {v!r}")
    for f, limit, what in _SIZES:
        v = getattr(cfg, f, None)
        if _int(v) and v > limit:
            raise ValueError(
                f"{name}: {f} ({what}) must be at most {limit:,}, got {f}={_show(v)}"
                + (f" ({_sizes(cfg)})" if f == "steps_per_iteration" else "")
            )


def check_vectorization(cfg: Any, name: str) -> None:
    """`cfg.vectorization`, the host loop's gymnasium vector env: "sync" or "async" (see
    `inject_rl.envs.host_env`), and only "sync" where nothing else would run: an `envpool/*`
    id (envpool's own threads) or an in-graph id (no host envs), where a silently ignored
    "async" would mislead.

    Raises:
      ValueError: one line naming the value and the allowed ones.
    """
    from inject_rl import envs

    v, env_id = cfg.vectorization, getattr(cfg, "env_id", None)
    try:
        envs.check_vectorization(env_id, v)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    if v != "sync" and envs.is_jax_env(env_id):
        raise ValueError(
            f"{name}: vectorization={v!r} applies to host envs; {env_id} is stepped in-graph "
            "(anakin loop): leave vectorization='sync'"
        )


def _sizes(cfg: Any) -> str:
    """`num_envs=...`, and `rollout_len` or `train_every`: what makes steps_per_iteration."""
    return " x ".join(
        f"{f}={getattr(cfg, f)}"
        for f in ("num_envs", "rollout_len", "train_every")
        if hasattr(cfg, f)
    )


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
                f"{name}: {f} must be a finite number {op} {low} or a schedule, got {f}={_show(v)}"
            )


def _real(v: Any) -> bool:
    """A finite real number, not a bool (an int too large for a float is not one)."""
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _show(v: Any, limit: int = 60) -> str:
    """`repr(v)`, cut to `limit` characters (a 400-digit number stays one readable line)."""
    text = repr(v)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text)} chars)"


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
