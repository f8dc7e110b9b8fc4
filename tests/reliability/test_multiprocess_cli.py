"""A two-process `inject-rl train` (jax.distributed on 127.0.0.1, gloo): the processes stop
together and refuse together; only process 0 writes the run directory."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests._cli import TINY, command, subprocess_env

pytestmark = pytest.mark.slow  # each test starts two CLI processes that train


@pytest.fixture
def env(tmp_path):
    return subprocess_env(tmp_path / "compile-cache")


def _start(tmp_path, env, out, *args):
    from inject_rl.loops import free_port

    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    coordinator = f"127.0.0.1:{free_port()}"
    procs = []
    for i in range(2):
        argv = [
            "train", "--config", tmp_path / "tiny.json", "--env", "CartPole-v1", "--out", out,
            "--coordinator", coordinator, "--num-processes", 2, "--process-id", i, *args,
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(
                command(argv),
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    return procs


def _finish(procs, timeout):
    try:
        return [(p.wait(timeout=timeout), p.stderr.read()) for p in procs]
    finally:
        for p in procs:
            p.kill()


def test_a_signal_to_one_process_stops_both_at_the_same_boundary(tmp_path, env):
    # SIGTERM to one process only (a scheduler stopping one node): it checkpointed and stopped
    # alone, and both processes hung for ever, the other in its next collective and this one
    # in jax.distributed's shutdown, waiting for it.
    procs = _start(tmp_path, env, "run", "--steps", 6400, "--checkpoint-every", 64, "--quiet")
    ckpts = tmp_path / "run" / "checkpoints"
    deadline = time.monotonic() + 240
    while not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
        assert all(p.poll() is None for p in procs), _finish(procs, 1)
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    (rc0, err0), (rc1, err1) = _finish(procs, timeout=60)
    assert (rc0, rc1) == (143, 143), (err0, err1)
    assert "stopped at env step" in err0 and "cannot be resumed yet" in err0, err0
    assert "--resume`" not in err0 and "Traceback" not in err0 + err1
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert 0 < len(rows) < 200  # stopped before the end (6400 steps are 200 calls of 32)


def test_process_0s_refusal_reaches_the_other_process(tmp_path, env):
    # Only process 0 checks the run directory: process 1 went on to its first collective,
    # waited for gloo's timeout, exited 1 and wrote its traceback into a directory it had
    # neither checked nor locked.
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("not a run")
    t = time.monotonic()
    (rc0, err0), (rc1, err1) = _finish(_start(tmp_path, env, out, "--steps", 64), timeout=120)
    assert (rc0, rc1) == (2, 2), (err0, err1)
    assert "is not empty and holds no config.json" in err0
    assert "process 0 refused this run" in err1 and "Traceback" not in err0 + err1
    assert time.monotonic() - t < 25  # not gloo's 30 s timeout
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
