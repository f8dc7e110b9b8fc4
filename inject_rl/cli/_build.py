"""Building a run from command-line values: Config, optimizer and the config.json record.

Everything here validates and builds; nothing is written. Errors are one-line ValueErrors.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import typing
from types import ModuleType
from typing import Any

import optax

from inject_rl import agents
from inject_rl import envs, loops, schedules
from inject_rl.optim import injected

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
DEFAULT_ENV = "phys2d/CartPole-v1"  # for an agent whose Config names no env
# Optimizer parameters that are not numbers (dtypes, masks, flags) are not injectable.
_OPT_NUMERIC = ("learning_rate", "momentum")
# The global-norm clip: a number goes to the Config's `max_grad_norm`.
MAX_NORM = "max_norm"
# Keys of config.json that say which run it is (the others, e.g. checkpoint_every, do not).
IDENTITY = ("agent", "devices", "opt", "hp", "config")
FORMAT = 1


def injectable_fields(config_cls: type) -> list[str]:
    """Config fields typed `float | StatefulSchedule` (annotated `Any`), e.g. PPO's `ent_coef`."""
    names = []
    for f in dataclasses.fields(config_cls):
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if t in ("Any", "typing.Any") or f.type is typing.Any or "StatefulSchedule" in t:
            names.append(f.name)
    return names


def optimizer_hps(factory: Any, agent: ModuleType | None = None) -> list[str]:
    """The numeric (injectable) parameters of an optax optimizer factory; without
    `learning_rate` for an agent whose `default_optimizer(cfg, factory)` sets it from the
    Config (PPO's `learning_rate`, SAC's `actor_lr`...)."""
    out = []
    for p in inspect.signature(factory).parameters.values():
        if p.name == "learning_rate" and agent is not None and has_factory_hook(agent):
            continue
        d = p.default
        numeric = isinstance(d, numbers.Real) and not isinstance(d, bool)
        if p.name in _OPT_NUMERIC or numeric:
            out.append(p.name)
    return out


def has_factory_hook(agent: ModuleType) -> bool:
    """Whether `agent.default_optimizer(cfg, factory, **hps)` exists (PPO's contract)."""
    fn = getattr(agent, "default_optimizer", None)
    return fn is not None and "factory" in inspect.signature(fn).parameters


def default_factory_name(agent: ModuleType) -> str | None:
    if not has_factory_hook(agent):
        return None
    default = inspect.signature(agent.default_optimizer).parameters["factory"].default
    return next((n for n, f in OPTIMIZERS.items() if f is default), None)


def default_env(agent: ModuleType) -> str:
    """The env an agent's Config defaults to (PPO: phys2d/CartPole-v1, SAC: Pendulum-v1)."""
    return _field_defaults(agent.Config).get("env_id") or DEFAULT_ENV


def supports(fn: Any, param: str) -> bool:
    return param in inspect.signature(fn).parameters


def _field_defaults(config_cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(config_cls)}


def config_from_json(agent_name: str, config_cls: type, values: Any, source: str) -> dict:
    """Config field overrides from a JSON object: validated names, lists as tuples, spec strings
    of injectable fields parsed into schedules."""
    if not isinstance(values, dict):
        raise ValueError(f"{source} must hold a JSON object of Config fields, got {values!r}")
    defaults = _field_defaults(config_cls)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ValueError(
            f"{source}: unknown {agent_name} Config field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(defaults)}"
        )
    injectable = injectable_fields(config_cls)
    out = {}
    for name, v in values.items():
        if name in injectable and isinstance(v, str):
            v = _hp_value(name, v, source)
        elif isinstance(defaults[name], tuple) and isinstance(v, list):
            v = tuple(v)
        out[name] = v
    return out


def config_to_json(cfg: Any) -> dict[str, Any]:
    """The full Config as JSON values, schedules as their spec strings."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, optax.schedules.StatefulSchedule):
            v = schedules.to_spec(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _hp_value(name: str, spec: str, source: str = "--hp") -> Any:
    try:
        value = schedules.parse(spec)
    except ValueError as e:
        raise ValueError(f"{source} {name}: {e}") from None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{source} {name}: a constant must be finite, got {spec!r}")
        if name == "learning_rate" and not value > 0:
            raise ValueError(f"{source} {name}: the learning rate must be > 0, got {spec!r}")
    return value


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

    agent: ModuleType
    cfg: Any
    optimizer: Any
    env: Any  # a JaxEnv (anakin) or a closed HostEnv giving the spaces (sebulba)
    loop: str  # "anakin" or "sebulba"
    num_devices: int
    record: dict[str, Any]


def allowed_hps(agent_name: str, agent: ModuleType, opt: str | None) -> str:
    cfg_names = injectable_fields(agent.Config)
    factory = OPTIMIZERS[opt or default_factory_name(agent) or "adam"]
    opt_names = [n for n in optimizer_hps(factory, agent) if n not in cfg_names]
    parts = [f"{', '.join(cfg_names)} ({agent_name} Config)"] if cfg_names else []
    parts.append(f"{', '.join(opt_names)} ({factory.__name__})")
    if "max_grad_norm" in _field_defaults(agent.Config):
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
) -> Built:
    """Validates every input and builds the Config, the optimizer and the env (writes nothing)."""
    agent = agents.get(agent_name)
    if opt is not None and opt not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {opt!r}; allowed: {', '.join(OPTIMIZERS)}")
    fields = config_from_json(agent_name, agent.Config, overrides, source)
    if env_id is None:
        env_id = fields.pop("env_id", None) or default_env(agent)
    fields.pop("env_id", None)
    if steps is not None:
        fields["total_steps"] = steps
    if seed is not None:
        fields["seed"] = seed

    injectable = injectable_fields(agent.Config)
    factory = OPTIMIZERS[opt or default_factory_name(agent) or "adam"]
    factory_names = optimizer_hps(factory, agent)
    has_clip = "max_grad_norm" in _field_defaults(agent.Config)
    opt_hps: dict[str, Any] = {}
    max_norm = None
    for name, spec in hp.items():
        value = _hp_value(name, spec)
        if name in injectable:
            fields[name] = value
        elif name == MAX_NORM and has_clip:
            if isinstance(value, float):
                fields["max_grad_norm"] = value
            else:
                max_norm = value
        elif name in factory_names:
            opt_hps[name] = value
        else:
            raise ValueError(
                f"unknown hyperparameter {name!r} for {agent_name}; allowed: "
                f"{allowed_hps(agent_name, agent, opt)}"
            )

    # Resolve the env first: its error names the JAX env ids and the host loop.
    env, loop = resolve_env(agent_name, agent, env_id)
    cfg = agent.config_for(env_id, **fields)
    cfg.validate()
    optimizer = _optimizer(agent_name, agent, cfg, opt, factory, opt_hps, max_norm)
    num_devices = len((loops.learner_devices if loop == "sebulba" else loops.devices_for)(devices))
    record = {
        "format": FORMAT,
        "agent": agent_name,
        "env": cfg.env_id,
        "loop": loop,
        "seed": cfg.seed,
        "steps": cfg.total_steps,
        "devices": num_devices,
        "opt": opt or default_factory_name(agent),
        "hp": {name: _canonical(spec) for name, spec in sorted(hp.items())},
        "overrides": {k: v for k, v in config_to_json(cfg).items() if k in overrides},
        "config": config_to_json(cfg),
    }
    return Built(agent, cfg, optimizer, env, loop, num_devices, record)


def _canonical(spec: str) -> str:
    return schedules.to_spec(schedules.parse(spec))


def _optimizer(agent_name, agent, cfg, opt, factory, opt_hps, max_norm):
    if opt is None and not opt_hps and max_norm is None:
        return agent.default_optimizer(cfg)
    if has_factory_hook(agent):
        if max_norm is not None:
            raise ValueError(
                f"{agent_name} takes {MAX_NORM} as a number only (Config.max_grad_norm), "
                f"got a schedule"
            )
        return agent.default_optimizer(cfg, factory, **opt_hps)
    # No hook: build the injected optimizer here, with the Config's learning rate and clip.
    lr = getattr(cfg, "learning_rate", None)
    if lr is None:
        raise ValueError(
            f"{agent_name}'s default optimizer takes no factory or hyperparameters; with --opt "
            f"or optimizer --hp give --hp learning_rate=... too"
        )
    clip = max_norm if max_norm is not None else getattr(cfg, "max_grad_norm", None)
    return injected(factory, learning_rate=lr, clip=clip, **opt_hps)


def host_loop_agents() -> list[str]:
    """Agents that can train on host envs (the sebulba loop): they have `make_host_learner`."""
    out = []
    for name in agents.names():
        try:
            module = agents.get(name)
        except ImportError:
            continue
        if hasattr(module, "make_host_learner"):
            out.append(name)
    return out


def resolve_env(agent_name: str, agent: ModuleType, env_id: str) -> tuple[Any, str]:
    """`(env, loop)`: an in-graph `JaxEnv` on "anakin", or a host env's spaces on "sebulba"."""
    if envs.is_jax_env(env_id):
        return envs.make(env_id), "anakin"
    import gymnasium

    try:
        spec = gymnasium.spec(env_id)
    except gymnasium.error.Error:
        envs.make(env_id)  # raises the error naming the JAX env ids and the host loop
        raise
    if not hasattr(agent, "make_host_learner"):
        raise ValueError(
            f"{agent_name} trains only on in-graph envs (anakin loop): "
            f"{', '.join(envs.jax_env_ids())}; {spec.id} needs the host loop (sebulba), "
            f"available with: {', '.join(host_loop_agents()) or 'no agent yet'}"
        )
    try:
        return envs.host_spaces(env_id), "sebulba"
    except gymnasium.error.Error as e:  # e.g. a missing optional dependency (box2d, mujoco)
        raise ValueError(f"cannot make {env_id}: {e}") from None


def same_run(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The identity keys on which two config.json records differ (empty: the same run)."""
    return [k for k in IDENTITY if a.get(k) != b.get(k)]
