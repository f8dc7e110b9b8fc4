"""Ctrl-C and SIGTERM stop a run at the next host-call boundary, after a checkpoint.

A `KeyboardInterrupt` raised wherever the main thread happens to be loses everything since the
last checkpoint (the first comes after 30 s of wall time), so "continue with --resume" was
often false (issue 12). While a run holds `StopSignals`, the first SIGINT or SIGTERM only asks
the run to stop; its callback checkpoints at the end of the current call and raises `Stopped`.
A second signal stops at once (`KeyboardInterrupt`), keeping the checkpoints already written.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TextIO


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal at a call boundary (a KeyboardInterrupt, so every handler of
    Ctrl-C in between lets it through and cleans up)."""

    def __init__(self, signum: int, checkpoint: int | None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.checkpoint = checkpoint  # the step of the checkpoint written (None: none)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal (130 for SIGINT, 143 for
        SIGTERM)."""
        return 128 + self.signum


class StopSignals:
    """Turns SIGINT/SIGTERM into a stop request while in use (`with StopSignals() as stop`).

    Only the main thread can install signal handlers; elsewhere this does nothing.

    >>> import os
    >>> with StopSignals(stream=sys.stdout) as stop:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     print(stop.received == signal.SIGTERM)
    inject-rl: SIGTERM: stopping after the current call (again to stop now)
    True
    """

    def __init__(
        self,
        signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
        stream: TextIO | None = None,
    ):
        self.signums = signums
        self.stream = stream
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # the second: stop now
            self.restore()
            raise KeyboardInterrupt
        self.received = signum
        stream = self.stream or sys.stderr
        name = signal.Signals(signum).name
        lead = "\n" if stream.isatty() else ""  # below a progress line refreshed in place
        stream.write(
            f"{lead}inject-rl: {name}: stopping after the current call (again to stop now)\n"
        )
        stream.flush()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.signums:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        """Gives the signals back to their previous handlers."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self.restore()
