"""The README runs as printed (slow): its shell commands in order, all but the install and test
blocks, in a fresh directory; then each Python block on its own, as a user would paste it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # the README's user has no fake devices
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def test_the_readme_has_what_this_test_runs():
    shell = [b for b in blocks("bash") if "pip install" not in b]
    assert shell and any("inject-rl train" in b for b in shell)
    assert len(blocks("python")) >= 2


@pytest.mark.slow
def test_the_shell_commands_run_in_order(tmp_path):
    script = "\n".join(
        ["set -euo pipefail", *[b for b in blocks("bash") if "pip install" not in b]]
    )
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=_env(), capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "ppo.png").is_file()
    assert "eval return" in proc.stdout and "agents:" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_python_block_runs_on_its_own(index, tmp_path):
    code = blocks("python")[index]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "a README block should print what it shows"
