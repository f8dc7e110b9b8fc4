"""Issue 12: one writer per run directory (inject_rl.runs.RunLock)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from inject_rl import runs


def _holder(out) -> subprocess.Popen:
    """A process holding `out`'s lock until killed (prints "locked" once it does)."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from inject_rl.runs import RunLock
        RunLock({str(out)!r}).acquire()
        print("locked", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        for attempt in (
            lambda: runs.RunLock(out).acquire(),
            lambda: runs.check_not_in_use(out),
        ):
            with pytest.raises(runs.RunInUse) as e:
                attempt()
            message = str(e.value)
            assert f"pid {holder.pid} on {socket.gethostname()}" in message
            assert "in use" in message and "\n" not in message
        assert sorted(p.name for p in out.iterdir()) == [runs.LOCK]  # nothing touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The OS released the dead holder's lock; its stale file does not block the next writer.
    runs.check_not_in_use(out)
    lock = runs.RunLock(out).acquire()
    assert (out / runs.LOCK).read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
    lock.release()


def test_release_leaves_no_trace_of_a_run_that_wrote_nothing(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with runs.RunLock(out):
        assert out.is_dir() and (out / runs.LOCK).is_file()
    assert list(tmp_path.iterdir()) == []  # every directory it created, removed


def test_release_keeps_what_the_run_wrote(tmp_path):
    out = tmp_path / "a" / "run"
    with runs.RunLock(out):
        (out / "config.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["config.json"]


def test_an_existing_directory_is_kept(tmp_path):
    (tmp_path / "run").mkdir()
    with runs.RunLock(tmp_path / "run"):
        pass
    assert (tmp_path / "run").is_dir() and list((tmp_path / "run").iterdir()) == []


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    first = runs.RunLock(tmp_path / "run").acquire()
    with pytest.raises(runs.RunInUse, match=f"pid {os.getpid()}"):
        runs.RunLock(tmp_path / "run").acquire()
    first.release()
    first.release()  # idempotent
    runs.RunLock(tmp_path / "run").acquire().release()


@pytest.mark.parametrize("out", ["file", "file/run"], ids=["is_a_file", "under_a_file"])
def test_an_unwritable_place_is_one_value_error_and_creates_nothing(tmp_path, out):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a directory") as e:
        runs.RunLock(tmp_path / out).acquire()
    assert "\n" not in str(e.value)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_parent_is_one_value_error(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(ValueError, match="is not writable"):
        runs.RunLock(tmp_path / "ro" / "run").acquire()
