"""Every public name of every package imports, and the agent registry resolves."""

import importlib

import pytest

PACKAGES = [
    "inject_rl.schedules",
    "inject_rl.signals",
    "inject_rl.optim",
    "inject_rl.envs",
    "inject_rl.loops",
    "inject_rl.agents",
    "inject_rl.runs",
]


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGES)
def test_all_names_import(package):
    mod = importlib.import_module(package)
    assert mod.__all__, package
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{package}.{name}"


def test_registry_resolves_every_agent_with_the_contract():
    from inject_rl import agents

    for name in agents.names():
        agent = agents.get(name)
        assert isinstance(agent, agents.Agent) and agent.name == name
        assert agent.loops and set(agent.loops) <= {"anakin", "sebulba"}
        module = importlib.import_module(f"inject_rl.agents.{name}")
        assert module.AGENT is agent
        assert module.train == agent.train and module.Config is agent.config
    with pytest.raises(ValueError, match="unknown agent 'nope'; available: ppo"):
        agents.get("nope")
