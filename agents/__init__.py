"""inject-rl agents: one module per agent, all sharing one contract.

Each agent module has a frozen `Config` dataclass, `config_for(env_id, **overrides)`,
`train(config, *, optimizer=None, num_devices=None, callback=None, resume=None) -> TrainResult`
and `evaluate(result, *, episodes=20, seed=0) -> float`. Modules are imported on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> (module, one-line description). The first one is the CLI's default agent.
AGENTS: dict[str, tuple[str, str]] = {
    "ppo": ("inject_rl.agents.ppo", "PPO, clipped surrogate + GAE; discrete or continuous actions"),
    "dqn": ("inject_rl.agents.dqn", "double DQN with on-device replay; discrete actions"),
    "impala": ("inject_rl.agents.impala", "IMPALA actor-critic with V-trace; host envs (sebulba) or phys2d"),
    "sac": ("inject_rl.agents.sac", "SAC with learned temperature; continuous actions"),
}


def names() -> list[str]:
    """Registered agent names."""
    return list(AGENTS)


def get(name: str) -> ModuleType:
    """The agent module registered as `name`.

    Raises:
      ValueError: unknown name (lists the known ones).
    """
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; available: {', '.join(AGENTS)}")
    return importlib.import_module(AGENTS[name][0])


def __getattr__(name: str):
    # `TrainResult` pulls in jax; the CLI must be able to import this package (and set
    # XLA_FLAGS for --devices) before jax is imported.
    if name == "TrainResult":
        from inject_rl.agents._common import TrainResult

        return TrainResult
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


__all__ = ["AGENTS", "TrainResult", "get", "names"]
