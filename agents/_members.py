"""Per-member Config values of a population (see `agents._population`): checked once, before
anything runs (`member_values`; `unread_values` for fields no member reads), and turned into each
member's Config and learner (`member_config`, `member_learner`).

Split from `agents/_population.py` when that outgrew one file (STYLE.md "Layout and size").
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from inject_rl.agents._contract import Agent
from inject_rl.agents._train import spaces


def member_config(cfg: Any, values: Mapping[str, Any]) -> Any:
    out = {}
    for name, v in values.items():
        default = getattr(cfg, name)
        is_int = isinstance(default, numbers.Integral) and not isinstance(default, bool)
        out[name] = int(v) if is_int else float(v)
    return dataclasses.replace(cfg, **out)


def member_values(
    agent: Agent, cfg: Any, size: int | None, values: Mapping[str, Sequence[Any]] | None
) -> dict[str, np.ndarray]:
    """Checked per-member Config values, `seed` always among them (default: `cfg.seed + i`).

    Raises:
      ValueError: an unknown or non-numeric field, lengths that differ from each other or from
        `size`, or a member whose Config fails `validate()` (naming the member and the value).
    """
    values = dict(values or {})
    fields = {f.name for f in dataclasses.fields(cfg)}
    lengths = {name: len(v) for name, v in values.items()}
    if size is None:
        if not lengths:
            raise ValueError("a population needs a size or per-member values")
        size = next(iter(lengths.values()))
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"population size must be an integer >= 1, got {size!r}")
    for name, n in lengths.items():
        if name not in fields:
            raise ValueError(
                f"{agent.name} has no Config field {name!r} to vary over members; "
                f"fields: {', '.join(sorted(fields))}"
            )
        if n != size:
            raise ValueError(f"{name}: {n} values given for a population of {size} members")
    values.setdefault("seed", [cfg.seed + i for i in range(size)])
    out = {}
    for name, vs in values.items():
        default = getattr(cfg, name)
        is_int = isinstance(default, numbers.Integral) and not isinstance(default, bool)
        if not isinstance(default, numbers.Real) or isinstance(default, bool):
            raise ValueError(
                f"{name} (now {default!r}) is not a number: only numeric Config fields can "
                "differ between members (a schedule's constants: build it from numeric fields)"
            )
        if is_int and name != "seed":
            raise ValueError(
                f"{name} cannot differ between members: integer Config fields are sizes and "
                "counts that shape the compiled program; vary it in separate runs"
            )
        for i, v in enumerate(vs):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"{name}: member {i}'s value must be a number, got {v!r}")
            if is_int and v != int(v):
                raise ValueError(f"{name}: member {i}'s value must be an integer, got {v!r}")
        out[name] = np.asarray(vs, np.int32 if is_int else np.float32)
    for i in range(size):
        member = {k: v[i] for k, v in out.items()}
        try:
            member_config(cfg, member).validate()
        except ValueError as e:
            raise ValueError(f"member {i} ({_show(member)}): {e}") from None
    return out


def _show(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items())


def member_learner(
    agent: Agent,
    cfg: Any,
    optimizer: Callable[[Any], optax.GradientTransformationExtraArgs],
    num_devices: int,
    network: Callable | None,
    env: Any,
) -> Callable[[Mapping[str, jax.Array]], Any]:
    """`member values -> the agent's anakin learner` for that member's Config and optimizer
    (rebuilt inside the traced step: the values are state, not program constants)."""
    env = spaces(cfg.env_id) if env is None else env
    agent.check_env(env)
    torso = (network or agent.network)(cfg, env.obs_shape)

    def build(member: Mapping[str, jax.Array]):
        member_cfg = dataclasses.replace(cfg, **member)
        return agent.anakin(member_cfg, env, optimizer(member_cfg), num_devices, torso)

    return build


def unread_values(
    agent: Agent,
    cfg: Any,
    values: Mapping[str, np.ndarray],
    optimizer: Callable[[Any], optax.GradientTransformationExtraArgs],
    num_devices: int,
    network: Callable | None = None,
    env: Any = None,
) -> list[str]:
    """The per-member Config fields (other than `seed`) that vary between members yet are read
    by neither a member's init nor its iteration: traced once with the values as inputs, a field
    no operation consumes. A sweep over one gave rows that differed in name only."""
    varied = [k for k, v in values.items() if k != "seed" and len(np.unique(v)) > 1]
    if not varied:
        return []
    build = member_learner(agent, cfg, optimizer, num_devices, network, env)
    member = {k: jnp.asarray(v[0]) for k, v in values.items()}
    try:
        state = jax.eval_shape(lambda m: build(m).init(jnp.int32(0)), member)
    except jax.errors.JAXTypeError:  # a field that shapes the program: refused when it runs
        return []

    def one(m, s):
        learner = build(m)
        return learner.init(jnp.int32(0)), learner.iteration(s, None)

    try:
        jaxpr = jax.make_jaxpr(one)(member, state).jaxpr
    except jax.errors.JAXTypeError:  # a field that shapes the program: refused when it runs
        return []
    used = {id(v) for eqn in jaxpr.eqns for v in eqn.invars}
    used |= {id(v) for v in jaxpr.outvars}
    names = sorted(member)  # a dict's leaves, in key order, are the first inputs
    return [
        k for k, v in zip(names, jaxpr.invars, strict=False) if k in varied and id(v) not in used
    ]
