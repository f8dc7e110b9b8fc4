"""Issue 12: a run directory holding a run is never replaced without --overwrite
(inject_rl.runs.check_run_dir, Run)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import pytest

from inject_rl import runs

RECORD = {
    "format": 1,
    "agent": "ppo",
    "env": "phys2d/CartPole-v1",
    "loop": "anakin",
    "seed": 0,
    "config": {},
}
IDENTITY = ("agent", "env", "seed")


def check(out, record=RECORD, resume=False, overwrite=False):
    return runs.check_run_dir(out, record, resume=resume, overwrite=overwrite, identity=IDENTITY)


def snapshot(d):
    return sorted((str(p), p.stat().st_mtime_ns) for p in d.rglob("*"))


@pytest.fixture
def finished(tmp_path):
    """A run directory as a finished run leaves it."""
    out = tmp_path / "run"
    (out / "checkpoints" / "8").mkdir(parents=True)
    (out / "params").mkdir()
    runs.write_json(out / runs.CONFIG, RECORD)
    (out / runs.METRICS).write_text('{"step": 32}\n')
    runs.write_json(out / runs.SUMMARY, {"steps": 256})
    return out


@pytest.mark.parametrize(
    "record, words",
    [
        (RECORD, ["already holds this run", "--resume", "--overwrite"]),
        ({**RECORD, "seed": 1}, ["holds a different run", "differs in seed", "--overwrite"]),
    ],
    ids=["same_run", "other_run"],
)
def test_a_run_directory_is_refused_without_resume_or_overwrite(finished, record, words):
    before = snapshot(finished)
    with pytest.raises(ValueError) as e:
        check(finished, record)
    for word in words:
        assert word in str(e.value)
    assert snapshot(finished) == before


def test_resume_and_overwrite_are_allowed(finished):
    assert check(finished, resume=True) == RECORD
    assert check(finished, {**RECORD, "seed": 1}, overwrite=True) is None
    with pytest.raises(ValueError, match="different run"):
        check(finished, {**RECORD, "seed": 1}, resume=True)
    with pytest.raises(ValueError, match="exclude each other"):
        check(finished, resume=True, overwrite=True)


def test_overwrite_never_replaces_a_directory_without_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no config.json"):
        check(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_config_json_that_is_no_runs_record_is_never_replaced(tmp_path):
    # A project folder with a config.json of its own was emptied by --overwrite (its src/,
    # .git/ and notes deleted): any JSON object passed for a run's record.
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print(1)")
    runs.write_json(tmp_path / runs.CONFIG, {"name": "my-project", "version": 2})
    before = snapshot(tmp_path)
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match="config.json is not a run's config"):
            check(tmp_path, **flags)
    assert snapshot(tmp_path) == before


def test_overwrite_refuses_a_run_directory_holding_other_files(finished):
    (finished / "notes.md").write_text("mine")
    (finished / "analysis").mkdir()
    before = snapshot(finished)
    with pytest.raises(ValueError, match="also holds analysis, notes.md, which no run writes"):
        check(finished, {**RECORD, "seed": 1}, overwrite=True)
    assert snapshot(finished) == before


def test_clear_run_dir_deletes_only_what_a_run_writes(finished):
    (finished / runs.LOCK).write_text("pid 1\n")
    (finished / "notes.md").write_text("mine")
    (finished / runs.TENSORBOARD).mkdir()
    (finished / runs.ERROR_LOG).write_text("Traceback")
    runs.clear_run_dir(finished)
    assert sorted(p.name for p in finished.iterdir()) == [runs.LOCK, "notes.md"]


def test_absent_empty_or_only_a_stale_lock_is_free(tmp_path):
    assert check(tmp_path / "absent") is None
    assert check(tmp_path) is None
    (tmp_path / runs.LOCK).write_text("pid 1 on elsewhere\n")  # its writer died
    assert check(tmp_path) is None
    with pytest.raises(ValueError, match="no checkpoint"):
        check(tmp_path / "absent", resume=True)


def test_a_stop_before_the_first_write_keeps_the_old_run(finished):
    # Ctrl-C while an --overwrite run compiled: its first call's callback deleted the old run,
    # then wrote one call of the new one, though the stop came before anything was written.
    import io
    import os
    import signal

    before = sorted((str(p), p.stat().st_mtime_ns) for p in finished.rglob("*"))
    with runs.StopSignals(stream=io.StringIO()) as stop:
        os.kill(os.getpid(), signal.SIGINT)  # "while compiling": before the first call returns
        run = runs.Run(
            finished, {**RECORD, "seed": 1}, num_calls=4, steps_per_call=32, quiet=True,
            overwrite=True, stop=stop,
        )  # fmt: skip
        try:
            with pytest.raises(runs.Stopped) as e:
                run(0, {"step": jnp.array([32])}, {"w": jnp.ones(2)})
        finally:
            run.close()
    assert e.value.checkpoint is None and not run.started
    assert sorted((str(p), p.stat().st_mtime_ns) for p in finished.rglob("*")) == before


def test_overwrite_replaces_the_old_contents_at_the_first_write(finished):
    record = {**RECORD, "seed": 1}
    run = runs.Run(finished, record, num_calls=1, steps_per_call=32, quiet=True, overwrite=True)
    assert (finished / runs.SUMMARY).is_file()  # untouched until the first call returns
    try:
        run(0, {"step": jnp.array([32])}, {"w": jnp.ones(2)})
    finally:
        run.close()
    assert sorted(p.name for p in finished.iterdir()) == [
        "checkpoints",
        runs.CONFIG,
        runs.METRICS,
    ]
    assert json.loads((finished / runs.CONFIG).read_text())["seed"] == 1
    assert runs.Checkpointer(finished / "checkpoints").all_steps() == [1]  # the old 8: gone
