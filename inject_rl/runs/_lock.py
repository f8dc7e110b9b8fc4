"""One writer per run directory: an exclusive `flock` on `<run>/.lock` for the whole run.

Two `inject-rl train` processes given the same `--out` would otherwise both write it: one run
silently replaced by the other, torn metrics lines, orbax failing on the other's checkpoint
(issue 12). The lock file holds the writer's pid and host, for the message the second writer
gives. `flock` belongs to the open file, so the OS releases it when the writer dies, however it
dies: a stale lock file is never mistaken for a live writer.

Nothing is written before a run has validated its inputs and compiled its program, yet the lock
must be held from the start (two writers both compile first). The lock is therefore taken when
the run starts, creating the directory if needed, and `release` removes the lock file and every
directory `acquire` created that is still empty: a run that fails or is interrupted before its
first write leaves the file system as it found it. (A run killed with SIGKILL while compiling
leaves an empty directory holding `.lock`, which counts as empty: `is_empty`.)
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

LOCK = ".lock"


class RunInUse(ValueError):
    """The run directory is locked by another live process."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "a process that has not written its pid yet"


def _in_use(out: Path, path: Path) -> RunInUse:
    return RunInUse(
        f"{out} is in use by another run ({_holder(path)}); wait for it to end or choose "
        "another run directory"
    )


def check_not_in_use(out: str | os.PathLike) -> None:
    """Raises RunInUse when a live process holds `out`'s lock. Writes nothing.

    Raises:
      RunInUse: the directory is locked (names the holder's pid and host).
    """
    path = Path(out) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (or unreadable): nobody holds it
        return
    try:
        try:  # a shared lock: conflicts with a writer's exclusive one, held for microseconds
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(Path(out), path) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_empty(out: str | os.PathLike) -> bool:
    """Whether `out` is a directory holding nothing but (perhaps) a lock file."""
    return all(p.name == LOCK for p in Path(out).iterdir())


def writable_error(out: str | os.PathLike) -> str | None:
    """Why a run directory could not be created or written at `out`, or None. Writes nothing.

    >>> writable_error("/proc/version/run")
    '/proc/version is not a directory'
    """
    out = Path(out)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def _mkdirs(out: Path) -> list[Path]:
    """Creates `out` and its missing parents; returns those it created, deepest first."""
    missing = []
    d = out
    while not d.exists() and d.parent != d:
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:  # another process made it meanwhile: not ours to remove
            missing.remove(d)
    return missing


class RunLock:
    """An exclusive lock on a run directory, held from `acquire` to `release`.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     lock = RunLock(f"{tmp}/run").acquire()
    ...     try:
    ...         RunLock(f"{tmp}/run").acquire()
    ...     except RunInUse as e:
    ...         print(str(e).split(" (")[0].endswith("run is in use by another run"))
    ...     lock.release()
    ...     print(os.path.exists(f"{tmp}/run"))
    True
    False
    """

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.path = self.out / LOCK
        self._fd: int | None = None
        self._created: list[Path] = []

    def acquire(self, attempts: int = 5) -> RunLock:
        """Creates the directory if needed and locks it.

        Raises:
          RunInUse: another live process holds it (names its pid and host).
          ValueError: the directory cannot be created or written (one line).
        """
        reason = writable_error(self.out)
        if reason is not None:
            raise ValueError(f"cannot write run directory {self.out}: {reason}")
        for attempt in range(attempts):
            try:
                self._created += _mkdirs(self.out)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                self._remove_created()
                raise ValueError(
                    f"cannot write run directory {self.out}: {e.strerror or e}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                # Held: by a writer, or for microseconds by a `check_not_in_use` probe.
                if attempt + 1 < attempts:
                    time.sleep(0.01)
                    continue
                self._remove_created()
                raise _in_use(self.out, self.path) from None
            # The previous holder may have removed the file between our open and flock: then
            # we locked a file nobody else will open. Lock the one at the path instead.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
            self._fd = fd
            return self
        self._remove_created()
        raise RunInUse(f"{self.out}: could not lock {self.path} (it keeps being replaced)")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Removes the lock file, then the directories `acquire` created if nothing was written
        in them, and unlocks. Idempotent."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: see `acquire`
        except OSError:
            pass
        self._remove_created()
        os.close(self._fd)  # unlocks
        self._fd = None

    def _remove_created(self) -> None:
        for d in self._created:  # deepest first
            try:
                d.rmdir()
            except OSError as e:  # written (not empty) or gone: keep going up only if gone
                if e.errno not in (errno.ENOENT,):
                    break
        self._created = []

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# The most numbered directories `claim_run_dir` tries (`base-10000`: something is wrong).
MAX_NUMBERED = 10_000


def numbered(base: str | os.PathLike, k: int) -> Path:
    """The `k`-th directory of a default run name: `base` itself, then `base-2`, `base-3`...

    >>> numbered("runs/ppo-s0", 1), numbered("runs/ppo-s0", 3)
    (PosixPath('runs/ppo-s0'), PosixPath('runs/ppo-s0-3'))
    """
    base = Path(base)
    return base if k == 1 else base.with_name(f"{base.name}-{k}")


def claim_run_dir(base: str | os.PathLike) -> RunLock:
    """Locks the first of `base`, `base-2`, `base-3`... that holds no run; returns the held
    lock (`lock.out` is the directory; `release` removes it again if nothing was written).

    A directory counts as free when it is absent or empty (`is_empty`) under its lock, so two
    processes claiming at once take two directories: the one that locks a directory first
    keeps it, and the other finds it in use and goes on to the next.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first = claim_run_dir(f"{tmp}/run")
    ...     second = claim_run_dir(f"{tmp}/run")  # while the first is held
    ...     print(first.out.name, second.out.name)
    ...     second.release(); first.release()
    run run-2

    Raises:
      ValueError: a directory cannot be created or written (one line), or all MAX_NUMBERED
        are taken.
    """
    for k in range(1, MAX_NUMBERED + 1):
        out = numbered(base, k)
        if out.exists() and not (out.is_dir() and is_empty(out)):
            continue  # a run, or anything else: never ours
        lock = RunLock(out)
        try:
            lock.acquire()
        except RunInUse:
            continue
        if is_empty(out):  # still, under the lock
            return lock
        lock.release()
    raise ValueError(f"{numbered(base, 2)} ... {numbered(base, MAX_NUMBERED)} are all taken")
