"""inject-rl agents (`inject_rl.agents`): one small module per agent, all on one contract.

Each agent is an `Agent` (`inject_rl.agents._contract`) registered under a name. The built-in
ones (ppo, dqn, impala, sac) are imported on first use; `register(name, agent)` adds one, and a
package adds one to `inject-rl` through the entry-point group `inject_rl.agents` (the entry
point names an `Agent`). Each agent module also exposes `Config`, `train`, `evaluate` and
`config_for`:

    from inject_rl.agents import ppo, load_policy
    result = ppo.train(ppo.Config(seed=0))
    action = result.policy().act(obs)              # or load_policy("runs/...").act(obs)

This package imports no jax at import time, so the CLI can set device flags first.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inject_rl.agents._contract import Agent

ENTRY_POINT_GROUP = "inject_rl.agents"

# The built-in agents: name -> module holding `AGENT`. The first is the CLI's default.
BUILTIN: dict[str, str] = {
    "ppo": "inject_rl.agents.ppo",
    "dqn": "inject_rl.agents.dqn",
    "impala": "inject_rl.agents.impala",
    "sac": "inject_rl.agents.sac",
}
_registered: dict[str, Agent] = {}


def register(name: str, agent: Agent, *, replace: bool = False) -> Agent:
    """Registers `agent` under `name` (for `get`, the CLI's `--agent`, `load_policy`).

    Raises:
      ValueError: `name` is taken (pass `replace=True` to replace it) or differs from
        `agent.name`.
      TypeError: `agent` is not an `Agent`.
    """
    from inject_rl.agents._contract import Agent

    if not isinstance(agent, Agent):
        raise TypeError(f"register takes an inject_rl.agents.Agent, got {type(agent).__name__}")
    if name != agent.name:
        raise ValueError(f"register: name {name!r} differs from the agent's name {agent.name!r}")
    if not replace and name in names():
        raise ValueError(f"agent {name!r} is already registered; pass replace=True to replace it")
    _registered[name] = agent
    return agent


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every agent name: built-in, registered, then those of installed packages."""
    out = list(BUILTIN)
    out += [n for n in _registered if n not in out]
    out += [n for n in sorted(_entry_points()) if n not in out]
    return out


def get(name: str) -> Agent:
    """The agent registered as `name` (imported on first use).

    Raises:
      ValueError: unknown name (lists the known ones), or an entry point that is no `Agent`.
    """
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        agent = importlib.import_module(BUILTIN[name]).AGENT
    else:
        ep = _entry_points().get(name)
        if ep is None:
            raise ValueError(f"unknown agent {name!r}; available: {', '.join(names())}")
        agent = ep.load()
        from inject_rl.agents._contract import Agent

        if not isinstance(agent, Agent):
            raise ValueError(
                f"entry point {ep.value!r} ({ENTRY_POINT_GROUP}) for agent {name!r} is not an "
                f"inject_rl.agents.Agent, got {type(agent).__name__}"
            )
    return register(name, agent, replace=True)


_LAZY = {
    "Agent": "inject_rl.agents._contract",
    "AnakinLearner": "inject_rl.agents._contract",
    "SebulbaLearner": "inject_rl.agents._contract",
    "Acting": "inject_rl.agents._contract",
    "Injectable": "inject_rl.agents._contract",
    "TrainResult": "inject_rl.agents._common",
    "HostCalls": "inject_rl.agents._common",
    "learner_step": "inject_rl.agents._learner",
    "Policy": "inject_rl.agents._policy",
    "load_policy": "inject_rl.agents._policy",
    "train": "inject_rl.agents._train",
    "Diverged": "inject_rl.agents._train",
    "evaluate": "inject_rl.agents._train",
    "PBT": "inject_rl.agents._population",
    "PopulationResult": "inject_rl.agents._population",
    "train_population": "inject_rl.agents._population",
}


def __getattr__(name: str) -> Any:
    # Lazy: these pull in jax, which the CLI must configure (XLA_FLAGS) before it is imported.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'inject_rl.agents' has no attribute {name!r}")


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "get", "names", "register", *_LAZY]
