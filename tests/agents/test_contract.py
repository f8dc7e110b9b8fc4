"""A new agent written only through the contract (tests/agents/_reinforce.py) registers, trains
through the library and through `inject-rl train` on both loops, and acts as a loaded policy;
a package adds one through the `inject_rl.agents` entry-point group."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inject_rl import agents
from inject_rl.agents import load_policy
from inject_rl.cli import main
from tests.agents import _reinforce

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reinforce():
    agent = agents.register("reinforce", _reinforce.AGENT, replace=True)
    yield agent
    agents._registered.pop("reinforce", None)


def test_registry_rejects_what_is_not_an_agent(reinforce):
    with pytest.raises(TypeError, match="takes an inject_rl.agents.Agent"):
        agents.register("x", object())
    with pytest.raises(ValueError, match="already registered"):
        agents.register("reinforce", reinforce)
    with pytest.raises(ValueError, match="differs from the agent's name"):
        agents.register("other", reinforce)
    assert "reinforce" in agents.names() and agents.get("reinforce") is reinforce
    assert reinforce.loops == ("anakin", "sebulba")
    assert reinforce.injectable == ("learning_rate",)


@pytest.mark.slow
def test_trains_through_the_library_and_learns(reinforce):
    cfg = _reinforce.Config(total_steps=40_960, seed=1)
    untrained = reinforce.evaluate(
        reinforce.train(dataclasses.replace(cfg, total_steps=512)), episodes=16
    )
    result = reinforce.train(cfg)
    trained = reinforce.evaluate(result, episodes=16)
    assert np.isfinite(result.metrics["loss"]).all()
    assert trained > max(2 * untrained, 100), (untrained, trained)
    # The policy acts on numpy observations, one or a batch, greedy or sampled.
    policy = result.policy()
    assert policy.act(np.zeros(4)) in (0, 1)
    assert policy.act(np.zeros((5, 4)), deterministic=False, seed=0).shape == (5,)


@pytest.mark.slow
@pytest.mark.parametrize("env", ["phys2d/CartPole-v1", "CartPole-v1"], ids=["anakin", "sebulba"])
def test_trains_through_the_cli_on_both_loops(reinforce, tmp_path, env, capsys):
    out = tmp_path / "run"
    args = ["train", "--agent", "reinforce", "--env", env, "--steps", "1024", "--out", str(out)]
    assert (
        main([*args, "--quiet", "--hp", "learning_rate=plateau(0.01, factor=0.5, patience=20)"])
        == 0
    )
    assert "eval return" in capsys.readouterr().out
    rows = (out / "metrics.jsonl").read_text().splitlines()
    last = json.loads(rows[-1])
    assert last["step"] == 1024 and "hp/learning_rate" in last
    policy = load_policy(out)
    assert policy.agent is reinforce and policy.config.env_id == env
    assert policy.act(np.zeros((3, 4))).shape == (3,)


@pytest.mark.slow
def test_a_package_adds_an_agent_through_its_entry_point(tmp_path):
    # A distribution on sys.path whose entry point names tests.agents._reinforce:AGENT.
    dist = tmp_path / "site" / "reinforce_pkg-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reinforce-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[inject_rl.agents]\nreinforce = tests.agents._reinforce:AGENT\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]),
        "JAX_PLATFORMS": "cpu",
    }
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "inject_rl.cli", "train", "--agent", "reinforce"]
    proc = subprocess.run(
        [*cmd, "--steps", "1024", "--out", str(out), "--quiet"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "params").is_dir()
    listing = subprocess.run(
        [sys.executable, "-m", "inject_rl.cli", "list"], env=env, capture_output=True, text=True
    )
    assert "reinforce" in listing.stdout and "written through the contract" in listing.stdout


def test_hp_help_lists_every_agents_injectable_fields(reinforce, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for name in agents.names():
        assert f"{name}: {', '.join(agents.get(name).injectable)}" in text
    assert "reinforce: learning_rate" in text and "sac: actor_lr, critic_lr, alpha_lr" in text
