"""Issue 12: SIGINT/SIGTERM stop a run at a call boundary after a checkpoint
(inject_rl.runs.StopSignals, Run)."""

from __future__ import annotations

import io
import os
import signal

import jax.numpy as jnp
import pytest

from inject_rl import runs


def _run(tmp_path, stop, num_calls=100):
    return runs.Run(
        tmp_path / "run",
        {"agent": "ppo"},
        num_calls=num_calls,
        steps_per_call=32,
        quiet=True,
        stop=stop,
        checkpoint_seconds=3600.0,  # no checkpoint by time: only the stop's
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_checkpoints_at_the_next_call_boundary_then_stops(tmp_path, signum):
    stream = io.StringIO()
    with runs.StopSignals(stream=stream) as stop:
        run = _run(tmp_path, stop)
        state = {"w": jnp.arange(3.0)}
        try:
            run(0, {"step": jnp.array([32])}, state)
            os.kill(os.getpid(), signum)  # arrives mid-call: the call ends normally
            with pytest.raises(runs.Stopped) as e:
                run(1, {"step": jnp.array([64])}, state)
        finally:
            run.close()
    assert e.value.checkpoint == 2 and e.value.exit_status == 128 + signum
    assert isinstance(e.value, KeyboardInterrupt)
    assert stream.getvalue().count("\n") == 1 and "stopping after the current call" in (
        stream.getvalue()
    )
    ckpt = runs.Checkpointer(tmp_path / "run" / "checkpoints")
    assert ckpt.all_steps() == [2]
    assert ckpt.restore_leaves(2)[1]["next_call"] == 2
    assert signal.getsignal(signum) is not stop._handle  # handlers given back


def test_a_second_signal_stops_at_once(tmp_path):
    with runs.StopSignals(stream=io.StringIO()):
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**6):  # the handler runs between bytecodes
                pass


def test_without_state_the_stop_claims_no_checkpoint(tmp_path):
    with runs.StopSignals(stream=io.StringIO()) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        run = _run(tmp_path, stop)
        try:
            with pytest.raises(runs.Stopped) as e:
                run(0, {"step": jnp.array([32])})  # an agent that hands out no state
        finally:
            run.close()
    assert e.value.checkpoint is None


@pytest.mark.parametrize(
    "started, checkpoint, stop, status, words, absent",
    [
        (True, 7, runs.Stopped(signal.SIGINT, 7), 130, ["after checkpoint 7", "--resume"], []),
        (True, 7, runs.Stopped(signal.SIGTERM, 7), 143, ["--resume"], []),
        (True, None, KeyboardInterrupt(), 130, ["nothing to resume", "--overwrite"], ["--resume"]),
        (False, None, KeyboardInterrupt(), 130, ["nothing written"], ["--resume"]),
        (False, 3, KeyboardInterrupt(), 130, ["after checkpoint 3", "--resume"], []),  # resumed
    ],
    ids=["stopped", "sigterm", "no_checkpoint", "not_started", "resumed_not_started"],
)
def test_the_cli_says_resume_only_when_a_checkpoint_exists(
    tmp_path, capsys, started, checkpoint, stop, status, words, absent
):
    from inject_rl.cli import _train

    run = _run(tmp_path, None)
    run.started, run.checkpoint = started, checkpoint
    run.rows = [{"step": 224}] if started or checkpoint else []
    assert _train._stopped(stop, run, tmp_path / "run") == status
    (line,) = capsys.readouterr().err.strip().splitlines()
    for word in words:
        assert word in line, line
    for word in absent:
        assert word not in line, line
