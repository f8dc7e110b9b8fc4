"""Training and evaluating any `Agent`: the one `train` and `evaluate` every agent shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from inject_rl import envs, loops, optim
from inject_rl.agents._common import TrainResult
from inject_rl.agents._contract import ANAKIN, SEBULBA, Agent, AnakinLearner, SebulbaLearner
from inject_rl.agents._learner import hp_metrics


def loop_for(agent: Agent, env_id: str) -> str:
    """The loop that trains `agent` on `env_id`: anakin for an in-graph env, sebulba otherwise.

    Raises:
      ValueError: the agent has no learner for that loop.
    """
    loop = ANAKIN if envs.is_jax_env(env_id) else SEBULBA
    if loop not in agent.loops:
        where = (
            f"in-graph envs ({', '.join(envs.jax_env_ids())})" if loop == SEBULBA else "host envs"
        )
        raise ValueError(
            f"{agent.name} trains only on {where} ({', '.join(agent.loops)} loop); {env_id} "
            f"needs the {loop} loop"
        )
    return loop


def spaces(env_id: str) -> Any:
    """The env's spaces: a `JaxEnv` for an in-graph id, a closed host env otherwise (`HostEnv`,
    or `EnvpoolEnv` for an `envpool/*` id)."""
    return envs.make(env_id) if envs.is_jax_env(env_id) else envs.host_spaces(env_id)


def learner(
    agent: Agent,
    cfg: Any,
    optimizer: optax.GradientTransformationExtraArgs,
    num_devices: int,
    network: Callable | None = None,
    env: Any = None,
) -> tuple[str, AnakinLearner | SebulbaLearner]:
    """`(loop, learner)` for `cfg.env_id`; `env` (its spaces) is made when not given."""
    loop = loop_for(agent, cfg.env_id)
    env = spaces(cfg.env_id) if env is None else env
    agent.check_env(env)
    torso = (network or agent.network)(cfg, env.obs_shape)
    if loop == ANAKIN:
        built = agent.anakin(cfg, env, optimizer, num_devices, torso)
        return loop, built._replace(iteration=_reported(built.iteration))
    built = agent.sebulba(cfg, env, optimizer, num_devices, torso)
    return loop, built._replace(learn=_reported(built.learn))


def _reported(fn: Callable) -> Callable:
    """`fn` returning `(state, metrics)`, its metrics completed with what every run reports:
    `step` (the state's env steps), `hp/<name>` for every injected hyperparameter, and
    `diverged` (1.0 when any parameter is NaN or infinite, or the loss is infinite; checked in
    the compiled step, a few reductions over the params). A NaN loss alone is not divergence:
    replay agents report NaN before learning starts, and a NaN from learning reaches the
    params."""

    def wrapped(*args):
        state, metrics = fn(*args)
        finite = jnp.all(jnp.array([jnp.isfinite(x).all() for x in jax.tree.leaves(state.params)]))
        if "loss" in metrics:  # NaN before learning starts (replay agents) is no divergence
            finite &= ~jnp.isinf(metrics["loss"])
        diverged = (~finite).astype(jnp.float32)
        return state, {
            "step": state.step,
            **hp_metrics(state.opt_state),
            **metrics,
            "diverged": diverged,
        }

    return wrapped


class Diverged(RuntimeError):
    """Training produced a non-finite loss or non-finite parameters (metric `diverged`)."""


def _checked(agent: Agent, callback: Callable | None) -> Callable:
    """The loop callback: raises `Diverged` at the first host call with a diverged iteration,
    before `callback` sees that call (so nothing downstream keeps a diverged state)."""

    def check(call: int, metrics: dict[str, Any], state: Any = None) -> None:
        bad = np.flatnonzero(np.asarray(metrics.get("diverged", ())) > 0)
        if bad.size:
            step = int(np.asarray(metrics["step"]).reshape(-1)[bad[0]])
            raise Diverged(
                f"{agent.name}: training diverged (non-finite loss or parameters) by env step "
                f"{step}, in host call {call}; try a lower learning rate or a gradient clip"
            )
        if callback is not None:
            callback(call, metrics, state)

    return check


def check_optimizer(optimizer: Any) -> optax.GradientTransformationExtraArgs:
    """`optimizer` as a transformation whose `update` takes the signals as `extra_args`: a plain
    `GradientTransformation` keeps them where its update has `**kwargs`, else ignores them
    (`optim.forward_extra_args`)."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation(ExtraArgs), "
            f"got {type(optimizer).__name__}"
        )
    return optim.forward_extra_args(optimizer)


def train(
    agent: Agent,
    cfg: Any = None,
    *,
    optimizer: optax.GradientTransformationExtraArgs | None = None,
    network: Callable | None = None,
    num_devices: int | None = None,
    callback: Callable[..., None] | None = None,
    resume: tuple[Any, int] | None = None,
    program_key: str | None = None,
) -> TrainResult:
    """Trains `agent`: on the anakin loop for a `phys2d/*` id, on the sebulba loop otherwise
    (host envs on the backend of `cfg.vectorization`, or envpool for an `envpool/*` id).

    Args:
      agent: the agent.
      cfg: its Config (None: the defaults).
      optimizer: any `optax.GradientTransformationExtraArgs` (default: the agent's
        `default_optimizer`); `update` receives every signal as keyword `extra_args` on every
        learner step.
      network: `(cfg, obs_shape) -> torso factory` replacing the agent's default network (see
        `inject_rl.agents.networks`).
      num_devices: devices to run on (None: 1; all global devices in a multi-process run on the
        host loop).
      callback: `callback(call_index, metrics, state)` after every host call; `state` is the
        replicated training state (copy what you keep: it is donated to the next call).
      resume: `(state, next_call)` to continue a run from a checkpoint (anakin: bitwise as if
        uninterrupted; host loop: the learner continues bitwise, the envs restart).
      program_key: on the anakin loop (any device count), names this run's compiled programs
        so that a later run with the same key loads them instead of tracing
        (`inject_rl.loops.run`).

    Returns:
      A `TrainResult`.

    Raises:
      Diverged: the loss or the parameters turned non-finite (checked after every host call;
        the callback never sees that call).
    """
    cfg = (agent.config() if cfg is None else cfg).validate()
    opt = check_optimizer(agent.default_optimizer(cfg) if optimizer is None else optimizer)
    start = {} if resume is None else {"state": resume[0], "start_call": resume[1]}
    if envs.is_jax_env(cfg.env_id):
        devices = loops.devices_for(num_devices)
        _, built = learner(agent, cfg, opt, len(devices), network)
        res = loops.run(
            built.init,
            built.iteration,
            num_calls=cfg.num_calls,
            iterations_per_call=cfg.iterations_per_call,
            num_devices=len(devices),
            callback=_checked(agent, callback),
            program_key=program_key,
            **start,
        )
    else:
        n = len(loops.learner_devices(num_devices))
        _, built = learner(agent, cfg, opt, n, network)
        res = loops.run_sebulba(
            built.init,
            built.act,
            built.learn,
            env_id=cfg.env_id,
            num_envs=cfg.num_envs,
            rollout_len=built.rollout_len,
            num_calls=cfg.num_calls,
            iterations_per_call=cfg.iterations_per_call,
            seed=cfg.seed,
            params_of=built.actor_params,
            staleness=built.staleness,
            num_actor_threads=built.num_actor_threads,
            num_devices=num_devices,
            vectorization=getattr(cfg, "vectorization", "sync"),
            callback=_checked(agent, callback),
            **start,
        )
    final = loops.first_replica(res.state)
    return TrainResult(
        agent.final_params(final),
        final.opt_state,
        res.metrics,
        res.state,
        cfg,
        res.compile_s,
        res.train_s,
        agent,
    )


def evaluate(
    agent: Agent,
    result: TrainResult,
    *,
    episodes: int = 20,
    seed: int = 0,
    network: Callable | None = None,
) -> float:
    """Mean return of `episodes` greedy episodes of `result.params` on `result.config.env_id`
    (in-graph for a `phys2d/*` id, on host envs otherwise; env `i` seeded from `seed`)."""
    return evaluate_params(agent, result.config, result.params, episodes, seed, network)


def evaluate_params(
    agent: Agent, cfg: Any, params: Any, episodes: int, seed: int, network=None
) -> float:
    """`evaluate` for `params` trained with `cfg`."""
    env = spaces(cfg.env_id)
    agent.check_env(env)
    acting = agent.policy(cfg, env, (network or agent.network)(cfg, env.obs_shape))
    if envs.is_jax_env(cfg.env_id):
        fn = jax.jit(
            lambda p, k: loops.evaluate_policy(env, lambda obs: acting.greedy(p, obs), episodes, k)
        )
        return float(fn(params, jax.random.key(seed)))
    greedy = jax.jit(acting.greedy)
    return loops.evaluate_host_policy(cfg.env_id, lambda obs: greedy(params, obs), episodes, seed)
