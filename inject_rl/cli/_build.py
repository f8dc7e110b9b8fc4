"""Building a run from command-line values: Config, optimizer and the config.json record.

Everything here validates and builds; nothing is written. Errors are one-line ValueErrors.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import sys
from typing import Any

import optax

from inject_rl import agents, envs, loops, optim, schedules
from inject_rl.agents._contract import SEBULBA, Agent
from inject_rl.agents._train import loop_for

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
# The contract: an agent's `default_optimizer(cfg, factory=optax.adam, **hyperparams)`.
DEFAULT_OPT = "adam"
DEFAULT_ENV = "phys2d/CartPole-v1"  # for an agent whose Config names no env
# Optimizer parameters that are not numbers (dtypes, masks, flags) are not injectable.
_OPT_NUMERIC = ("learning_rate", "momentum")
# The global-norm clip: a number goes to the Config's `max_grad_norm`.
MAX_NORM = "max_norm"
# Keys of config.json that say which run it is (the others, e.g. checkpoint_every, do not).
IDENTITY = ("agent", "devices", "opt", "hp", "config", "population")
FORMAT = 1


def optimizer_hps(factory: Any) -> list[str]:
    """The numeric (injectable) parameters of an optax optimizer factory, but `learning_rate`:
    an agent's default optimizer takes its learning rate(s) from its Config."""
    out = []
    for p in inspect.signature(factory).parameters.values():
        if p.name == "learning_rate":
            continue
        d = p.default
        numeric = isinstance(d, numbers.Real) and not isinstance(d, bool)
        if p.name in _OPT_NUMERIC or numeric:
            out.append(p.name)
    return out


def default_env(agent: Agent) -> str:
    """The env an agent's Config defaults to (PPO: phys2d/CartPole-v1, SAC: Pendulum-v1)."""
    return agent.defaults().get("env_id") or DEFAULT_ENV


def _hp_value(name: str, spec: str, source: str = "--hp") -> Any:
    try:
        value = schedules.parse(spec)
    except ValueError as e:
        raise ValueError(f"{source} {name}: {e}") from None
    except OverflowError:  # an integer literal too large for a float: 1 and 400 zeros
        raise ValueError(
            f"{source} {name}: a number in {_cut(spec)} is too large for a float "
            f"(at most {sys.float_info.max:.4g})"
        ) from None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{source} {name}: a constant must be finite, got {_cut(spec)}")
        if name == "learning_rate" and not value > 0:
            raise ValueError(f"{source} {name}: the learning rate must be > 0, got {_cut(spec)}")
    return value


def _cut(spec: str, limit: int = 60) -> str:
    """`repr(spec)`, at most `limit` characters (the length said when cut)."""
    text = repr(spec)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(spec)} chars)"


def parse_hp_args(items: list[str] | None) -> dict[str, str]:
    """`["NAME=SPEC", ...]` -> {NAME: SPEC}; a repeated name is an error."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, spec = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not spec.strip():
            raise ValueError(f"--hp takes NAME=SPEC (e.g. learning_rate=3e-4), got {item!r}")
        if name in out:
            raise ValueError(f"--hp {name} given twice")
        out[name] = spec.strip()
    return out


@dataclasses.dataclass
class Built:
    """A validated run: what `train` is called with, and its config.json record."""

    agent: Agent
    cfg: Any
    optimizer: Any
    env: Any  # a JaxEnv (anakin) or a closed HostEnv giving the spaces (sebulba)
    loop: str  # "anakin" or "sebulba"
    num_devices: int
    record: dict[str, Any]
    make_optimizer: Any = None  # Config -> optimizer (what `optimizer` is for `cfg`)
    population: Any = None  # (size, PBT or None) of a population run (`--population`)


def allowed_hps(agent: Agent, opt: str | None) -> str:
    cfg_names = agent.injectable
    factory = OPTIMIZERS[opt or DEFAULT_OPT]
    opt_names = [n for n in optimizer_hps(factory) if n not in cfg_names]
    parts = [f"{', '.join(cfg_names)} ({agent.name} Config)"] if cfg_names else []
    parts.append(f"{', '.join(opt_names)} ({factory.__name__})")
    if "max_grad_norm" in agent.defaults():
        parts.append(f"{MAX_NORM} (gradient clip)")
    return "; ".join(parts)


def build(
    *,
    agent_name: str,
    env_id: str | None,
    steps: int | None,
    seed: int | None,
    devices: int | None,
    hp: dict[str, str],
    opt: str | None,
    overrides: dict[str, Any],
    source: str = "--config",
    population: dict[str, Any] | None = None,
) -> Built:
    """Validates every input and builds the Config, the optimizer and the env (writes nothing)."""
    agent = agents.get(agent_name)
    if opt is not None and opt not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {opt!r}; allowed: {', '.join(OPTIMIZERS)}")
    if isinstance(overrides, dict):  # spec strings of injectable fields: one-line errors
        for name, v in overrides.items():
            if name in agent.injectable and isinstance(v, str):
                _hp_value(name, v, source)
    fields = agent.config_from_json(overrides, source)
    if env_id is None:
        env_id = fields.pop("env_id", None) or default_env(agent)
    fields.pop("env_id", None)
    if steps is not None:
        fields["total_steps"] = steps
    if seed is not None:
        fields["seed"] = seed

    factory = OPTIMIZERS[opt or DEFAULT_OPT]
    factory_names = optimizer_hps(factory)
    has_clip = "max_grad_norm" in agent.defaults()
    opt_hps: dict[str, Any] = {}
    for name, spec in hp.items():
        value = _hp_value(name, spec)
        if name in agent.injectable:
            fields[name] = value
        elif name == MAX_NORM and has_clip:
            if not isinstance(value, float):
                raise ValueError(
                    f"{agent_name} takes {MAX_NORM} as a number only (Config.max_grad_norm), "
                    "got a schedule"
                )
            fields["max_grad_norm"] = value
        elif name in factory_names:
            opt_hps[name] = value
        else:
            raise ValueError(
                f"unknown hyperparameter {name!r} for {agent_name}; allowed: "
                f"{allowed_hps(agent, opt)}"
            )

    # Resolve the env first: its error names the JAX env ids and the host loop.
    env, loop = resolve_env(agent, env_id)
    agent.check_env(env)
    cfg = agent.config_for(env_id, **fields).validate()

    # A hypergradient schedule reads `update_cos`, which `update_alignment` computes.
    aligned = any(
        _reads_update_cos(v)
        for v in [*opt_hps.values(), *(getattr(cfg, n) for n in agent.injectable)]
    )

    def make_optimizer(c: Any) -> Any:
        opt = agent.default_optimizer(c, factory, **opt_hps)
        return optim.update_alignment(opt) if aligned else opt

    optimizer = make_optimizer(cfg)
    num_devices = len((loops.learner_devices if loop == "sebulba" else loops.devices_for)(devices))
    record = {
        "format": FORMAT,
        "agent": agent_name,
        "env": cfg.env_id,
        "loop": loop,
        "seed": cfg.seed,
        "steps": cfg.total_steps,
        "devices": num_devices,
        "opt": opt or DEFAULT_OPT,
        "hp": {name: _canonical(spec) for name, spec in sorted(hp.items())},
        "overrides": {k: v for k, v in agent.config_to_json(cfg).items() if k in overrides},
        "config": agent.config_to_json(cfg),
    }
    members = None
    if population is not None:
        members, record["population"] = _population(agent, cfg, loop, population)
    return Built(agent, cfg, optimizer, env, loop, num_devices, record, make_optimizer, members)


MAX_POPULATION = 4096  # members of one population (each a whole training state on device)


def _population(agent: Agent, cfg: Any, loop: str, spec: dict[str, Any]) -> tuple[Any, dict]:
    """`((size, PBT or None), config.json record)` of `--population N [--pbt NAMES]`.

    Raises:
      ValueError: a host-env run, a size out of range, bad PBT settings (one line).
    """
    from inject_rl.agents._population import PBT

    size, names, interval = spec.get("size"), spec.get("pbt"), spec.get("interval")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_POPULATION:
        raise ValueError(f"--population must be an integer in [1, {MAX_POPULATION}], got {size!r}")
    if loop != "anakin":
        raise ValueError(
            f"--population trains its members as one program on in-graph envs "
            f"({', '.join(envs.jax_env_ids())}); {cfg.env_id} runs on host envs"
        )
    pbt = None
    if names:
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"--pbt must name hyperparameters, got {names!r}")
        pbt = PBT(tuple(names), interval=PBT.interval if interval is None else interval)
        pbt.validate(size)
    elif interval is not None:
        raise ValueError("--pbt-interval needs --pbt")
    record = {"size": size, "pbt": None}
    if pbt is not None:
        record["pbt"] = {"hyperparams": list(pbt.hyperparams), "interval": pbt.interval}
    return (size, pbt), record


def _reads_update_cos(value: Any) -> bool:
    """Whether a schedule (or the schedule a combinator wraps) reads `update_cos`."""
    for _ in range(8):  # specs nest at most 8 deep
        if getattr(value, "signal", None) == "update_cos":
            return True
        value = getattr(value, "schedule", None)
        if value is None:
            return False
    return False


def _canonical(spec: str) -> str:
    return schedules.to_spec(schedules.parse(spec))


def host_loop_agents() -> list[str]:
    """Agents that can train on host envs (the sebulba loop)."""
    out = []
    for name in agents.names():
        try:
            agent = agents.get(name)
        except (ImportError, ValueError):
            continue
        if SEBULBA in agent.loops:
            out.append(name)
    return out


def resolve_env(agent: Agent, env_id: str) -> tuple[Any, str]:
    """`(env, loop)`: an in-graph `JaxEnv` on "anakin", or a host env's spaces on "sebulba"."""
    if envs.is_jax_env(env_id):
        return envs.make(env_id), loop_for(agent, env_id)
    if envs.is_envpool_id(env_id):  # envpool's own registry (a missing package: one line)
        _check_host_loop(agent, env_id)
        return envs.host_spaces(env_id), SEBULBA
    import gymnasium

    try:
        spec = envs.spec(env_id)  # imports the module of a "module:Env-v0" id
    except ValueError:
        envs.make(env_id)  # raises the error naming the JAX env ids and the host loop
        raise
    _check_host_loop(agent, spec.id)
    try:
        return envs.host_spaces(env_id), SEBULBA
    except gymnasium.error.Error as e:  # e.g. a missing optional dependency (box2d, mujoco)
        raise ValueError(f"cannot make {env_id}: {e}") from None


def _check_host_loop(agent: Agent, env_id: str) -> None:
    if SEBULBA not in agent.loops:
        raise ValueError(
            f"{agent.name} trains only on in-graph envs (anakin loop): "
            f"{', '.join(envs.jax_env_ids())}; {env_id} needs the host loop (sebulba), "
            f"available with: {', '.join(host_loop_agents()) or 'no agent yet'}"
        )


def same_run(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The identity keys on which two config.json records differ (empty: the same run)."""
    return [k for k in IDENTITY if a.get(k) != b.get(k)]
