"""`runs.claim_run_dir`: the default run directory is numbered when taken, atomically."""

from __future__ import annotations

import threading

import pytest

from inject_rl import runs


def _finished(path):
    path.mkdir(parents=True)
    (path / runs.CONFIG).write_text("{}")


def test_numbers_past_directories_that_hold_runs(tmp_path):
    base = tmp_path / "runs" / "ppo-s0"
    names = []
    for _ in range(3):
        lock = runs.claim_run_dir(base)
        names.append(lock.out.name)
        (lock.out / runs.CONFIG).write_text("{}")  # the run writes it
        lock.release()
    assert names == ["ppo-s0", "ppo-s0-2", "ppo-s0-3"]
    assert all((base.parent / n / runs.CONFIG).is_file() for n in names)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d.mkdir(), "run"),  # empty: free
        (lambda d: (d.mkdir(), (d / runs.LOCK).write_text("pid 1")), "run"),  # killed compiling
        (lambda d: (d.mkdir(), (d / "notes.txt").write_text("mine")), "run-2"),  # not a run
        (lambda d: d.write_text("a file"), "run-2"),
        (_finished, "run-2"),
    ],
    ids=["empty", "stale_lock_file", "other_files", "a_file", "a_run"],
)
def test_what_counts_as_free(tmp_path, make, expected):
    make(tmp_path / "run")
    lock = runs.claim_run_dir(tmp_path / "run")
    try:
        assert lock.out == tmp_path / expected
    finally:
        lock.release()


def test_a_directory_held_by_a_compiling_run_is_skipped(tmp_path):
    held = runs.RunLock(tmp_path / "run").acquire()  # empty: still compiling
    try:
        lock = runs.claim_run_dir(tmp_path / "run")
        assert lock.out == tmp_path / "run-2"
        lock.release()
    finally:
        held.release()


def test_an_unused_claim_leaves_nothing(tmp_path):
    runs.claim_run_dir(tmp_path / "runs" / "run").release()
    assert list(tmp_path.iterdir()) == []


def test_concurrent_claims_take_distinct_directories(tmp_path):
    n = 8
    barrier = threading.Barrier(n)
    claimed, errors = [], []

    def claim():
        try:
            barrier.wait()
            lock = runs.claim_run_dir(tmp_path / "run")
            claimed.append(lock)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=claim) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors, errors
        names = sorted(lock.out.name for lock in claimed)
        assert names == sorted(["run", *[f"run-{k}" for k in range(2, n + 1)]])
    finally:
        for lock in claimed:
            lock.release()
