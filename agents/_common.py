"""What every agent shares: the result type, config checks, hyperparameter metrics and the
choice and running of the loop."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from inject_rl import envs, loops
from inject_rl.optim import hyperparams


class TrainResult(NamedTuple):
    """What an agent's `train` returns."""

    params: Any  # trained params (device 0's copy, on the host)
    opt_state: Any  # optimizer state, schedule states included (device 0's copy)
    metrics: dict[str, np.ndarray]  # name -> value per learner iteration (`step`: env steps)
    state: Any  # the full final training state, leading [num_devices] axis on every leaf
    config: Any  # the agent's Config
    compile_s: float  # seconds tracing + compiling the training step
    train_s: float  # seconds in the compiled training calls


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


def hp_metrics(opt_state: Any) -> dict[str, jax.Array]:
    """`hp/<name>` for every injected hyperparameter (empty for a plain optimizer)."""
    return {f"hp/{k}": v for k, v in hyperparams(opt_state).items()}


def check_config(cfg: Any, *, positive_ints=(), positive=(), unit=(), nonneg=()) -> None:
    """Eager validation of a frozen Config: one-line ValueError naming the field and range."""
    name = type(cfg).__module__.rsplit(".", 1)[-1]
    for f in positive_ints:
        v = getattr(cfg, f)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}: {f} must be an integer >= 1, got {f}={v!r}")
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
    """Fields that take a number or a schedule: numbers must be > low (>= low when inclusive)."""
    name = type(cfg).__module__.rsplit(".", 1)[-1]
    for f, (low, inclusive) in ranges.items():
        v = getattr(cfg, f)
        if isinstance(v, optax.schedules.StatefulSchedule) or (callable(v) and not _real(v)):
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


def check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation(ExtraArgs), "
            f"got {type(optimizer).__name__}"
        )


def replace(cfg: Any, **changes: Any) -> Any:
    """`dataclasses.replace` that names unknown fields in a one-line ValueError."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; allowed: {sorted(fields)}")
    return dataclasses.replace(cfg, **changes)


def run_loop(
    cfg: Any,
    opt: optax.GradientTransformationExtraArgs,
    make_learner: Callable,
    make_host_learner: Callable | None = None,
    *,
    num_devices: int | None,
    callback: Callable[..., None] | None,
    resume: tuple[Any, int] | None,
    program_key: str | None,
    host_options: Callable[[tuple], dict[str, Any]] | None = None,
) -> loops.LoopResult:
    """Runs an agent's learner on the loop its env calls for, as the agents' `train()` do.

    A `phys2d/*` id (or an agent without `make_host_learner`) runs `make_learner(cfg, env, opt,
    num_devices)` on the anakin loop; any other id runs `make_host_learner` on the sebulba loop
    with `host_options(learner)` as extra `run_sebulba` arguments (default: `rollout_len` and
    `num_actor_threads` from the config). `resume` is `(state, next_call)` or None.
    """
    start = {} if resume is None else {"state": resume[0], "start_call": resume[1]}
    if make_host_learner is None or envs.is_jax_env(cfg.env_id):
        env = envs.make(cfg.env_id)
        devices = loops.devices_for(num_devices)
        init, iteration, _ = make_learner(cfg, env, opt, len(devices))
        return loops.run(
            init,
            iteration,
            num_calls=cfg.num_calls,
            iterations_per_call=cfg.iterations_per_call,
            num_devices=len(devices),
            callback=callback,
            program_key=program_key,
            **start,
        )
    env = envs.host_spaces(cfg.env_id)
    learner = make_host_learner(cfg, env, opt, len(loops.learner_devices(num_devices)))
    if host_options is None:
        options = {"rollout_len": cfg.rollout_len, "num_actor_threads": cfg.num_actor_threads}
    else:
        options = host_options(learner)
    init, act, learn = learner[:3]
    return loops.run_sebulba(
        init,
        act,
        learn,
        env_id=cfg.env_id,
        num_envs=cfg.num_envs,
        num_calls=cfg.num_calls,
        iterations_per_call=cfg.iterations_per_call,
        seed=cfg.seed,
        staleness=cfg.staleness,
        num_devices=num_devices,
        callback=callback,
        **options,
        **start,
    )


def result(
    cfg: Any, res: loops.LoopResult, params_of: Callable[[Any], Any] | None = None
) -> TrainResult:
    """The `TrainResult` of a loop's result: device 0's opt state and params (or
    `params_of(device 0's state)`, e.g. DQN's kept best params)."""
    final = loops.first_replica(res.state)
    return TrainResult(
        final.params if params_of is None else params_of(final),
        final.opt_state,
        res.metrics,
        res.state,
        cfg,
        res.compile_s,
        res.train_s,
    )
