"""Without --out the same command runs again: the default run directory is numbered when taken
(issue 15 item 1); an explicit --out that holds a run stays refused."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests._cli import TINY, cli, command, ok, subprocess_env

BASE = "ppo-phys2d-CartPole-v1-s0"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return subprocess_env(tmp_path_factory.mktemp("compile-cache"))


@pytest.fixture(scope="module")
def args(tmp_path_factory):
    config = tmp_path_factory.mktemp("inputs") / "tiny.json"
    config.write_text(json.dumps(TINY))
    return ["train", "--config", config, "--steps", 32, "--quiet", "--eval-episodes", 1]


def _runs(cwd):
    return sorted(p.name for p in (cwd / "runs").iterdir())


@pytest.mark.slow
def test_the_same_command_twice_takes_the_next_directory(env, args, tmp_path):
    first = ok(cli(args, env, tmp_path))
    second = ok(cli(args, env, tmp_path))
    assert _runs(tmp_path) == [BASE, f"{BASE}-2"]
    assert f"run directory runs/{BASE}\n" in first.stdout
    assert f"run directory runs/{BASE}-2\n" in second.stdout
    for name in _runs(tmp_path):
        assert json.loads((tmp_path / "runs" / name / "summary.json").read_text())["steps"] == 32

    # Two at once: each takes its own directory (claimed under the run lock).
    procs = [
        subprocess.Popen(
            command(args),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    assert _runs(tmp_path) == [BASE, f"{BASE}-2", f"{BASE}-3", f"{BASE}-4"]
    said = sorted(out.rsplit("run directory ", 1)[1].strip() for _, out, _ in results)
    assert said == [f"runs/{BASE}-3", f"runs/{BASE}-4"]
    for name in _runs(tmp_path):
        run = tmp_path / "runs" / name
        assert (run / "params").is_dir() and not (run / ".lock").exists()

    # An explicit --out holding a run is refused as before; nothing is numbered.
    proc = cli([*args, "--out", f"runs/{BASE}"], env, tmp_path)
    assert proc.returncode == 2 and "already holds this run" in proc.stderr, proc.stderr
    assert len(_runs(tmp_path)) == 4
