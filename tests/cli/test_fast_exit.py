"""`inject_rl.cli.run` (the console script) exits with main's status after every other exit
handler, without the interpreter's teardown; an uncaught exception exits the ordinary way."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    from inject_rl import cli

    def main():
        # Registered after run()'s own handler, so it must run before the fast exit.
        atexit.register(lambda: print("late handler ran", flush=True))
        print("unflushed output", end="")  # the fast exit flushes stdout
        if sys.argv[1] == "raise":
            raise RuntimeError("boom")
        return int(sys.argv[1])

    cli.main = main
    cli.run()
    """
)


def run(arg: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONUNBUFFERED", None)  # buffered stdout: the fast exit must flush it
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, arg], env=env, capture_output=True, text=True, timeout=60
    )


def test_status_and_later_exit_handlers_survive_the_fast_exit():
    for status in (0, 2, 130):
        proc = run(str(status))
        assert proc.returncode == status, proc.stderr
        assert "unflushed output" in proc.stdout and "late handler ran" in proc.stdout


def test_an_uncaught_exception_exits_the_ordinary_way():
    proc = run("raise")
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr and "late handler ran" in proc.stdout
