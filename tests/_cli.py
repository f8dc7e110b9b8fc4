"""Running the `inject-rl` command line in a subprocess, as the CLI tests do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A tiny PPO layout for CLI runs (`--config` JSON): 2 envs x 8 steps x 2 iterations = 32 env steps
# per host call, one epoch of one minibatch, one 8-unit layer.
TINY = {
    "num_envs": 2,
    "rollout_len": 8,
    "epochs": 1,
    "num_minibatches": 1,
    "iterations_per_call": 2,
    "hidden": [8],
}


def subprocess_env(compile_cache: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout importable, its own compilation cache,
    and no fake devices (the CLI sets them itself for --devices)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e["INJECT_RL_COMPILE_CACHE"] = str(compile_cache)
    e.pop("XLA_FLAGS", None)
    return e


def command(args) -> list[str]:
    return [sys.executable, "-m", "inject_rl.cli", *map(str, args)]


def cli(args, env, cwd, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
