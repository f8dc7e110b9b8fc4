"""Training progress on the terminal: one line refreshed in place on a TTY, a log line otherwise."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


def _num(x: Any, fmt: str) -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


class Progress:
    """Prints steps, steps/s, recent return and learning rate after each host call.

    On a TTY the line is rewritten with `\\r`; elsewhere (a log file, a pipe) each call gives one
    plain line.
    """

    def __init__(self, total_steps: int, stream: TextIO | None = None):
        self.total = total_steps
        self.stream = sys.stdout if stream is None else stream
        self.tty = self.stream.isatty()
        self._t0 = self._step0 = None  # the first row's time and step (compile excluded)
        self._return = None

    def line(self, row: Mapping[str, Any]) -> str:
        """The progress text for a metrics row."""
        step = int(row.get("step", 0))
        if row.get("episode_return") is not None:
            self._return = row["episode_return"]  # the latest return, kept across empty calls
        now = time.perf_counter()
        if self._t0 is None:
            self._t0, self._step0 = now, step
        rate = (step - self._step0) / (now - self._t0) if now > self._t0 else math.nan
        pct = 100.0 * step / self.total if self.total else 100.0
        text = (
            f"step {step}/{self.total} ({pct:3.0f}%)  {_num(rate, ',.0f')} steps/s  "
            f"return {_num(self._return, '.1f')}"
        )
        lr = next(
            (v for k, v in row.items() if k.startswith("hp/") and k.endswith("learning_rate")), None
        )
        if lr is not None:
            text += f"  lr {_num(lr, '.2e')}"
        return text

    def update(self, row: Mapping[str, Any]) -> None:
        text = self.line(row)
        self._write("\r\x1b[2K" + text if self.tty else text + "\n")

    def close(self) -> None:
        if self.tty:
            self._write("\n")

    def _write(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away (`inject-rl train | head -1`): the run goes on unprinted
            # instead of dying mid-training with no checkpoint to resume from.
            if self.stream is sys.stdout:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes it at exit
            self.stream = None
