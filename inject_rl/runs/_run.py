"""A run directory being written: the callback an agent's `train` calls after each host call.

Nothing is written before the first call returns (inputs valid, program compiled): then the
directory gets config.json (an `--overwrite`n run's old contents go first), metrics rows as they
come, checkpoints and progress. A stop request (`StopSignals`) checkpoints at the end of the
call and raises `Stopped`; one that came before the first call returned writes nothing. In a
multi-process run every process stops at the boundary where any of them was asked to.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inject_rl.runs._check import clear_run_dir
from inject_rl.runs._checkpoint import Checkpointer, preload
from inject_rl.runs._files import (
    CHECKPOINTS,
    CONFIG,
    METRICS,
    PARAMS,
    SUMMARY,
    json_safe,
    write_json,
)
from inject_rl.runs._metrics import MetricsWriter, summarize_call
from inject_rl.runs._progress import Progress
from inject_rl.runs._stop import Stopped, StopSignals

# Without `every_calls`, a checkpoint is written when this many seconds of wall time have passed
# since the last one (and after the last call): an orbax save of a small state takes about
# 0.08 s on 2 CPU cores, so this keeps saving under 1% of a run however short its calls.
CHECKPOINT_SECONDS = 30.0


class Run:
    """Writes one run directory from an agent's per-call callbacks.

    Args:
      out: the run directory (locked by the caller: `RunLock`).
      record: config.json's contents.
      num_calls: host calls of the whole run.
      steps_per_call: env steps per host call (for progress).
      resumed: `(step, meta)` of the checkpoint the run continues from, or None.
      every_calls: host calls between checkpoints (None: every `checkpoint_seconds`).
      quiet: no progress output.
      writes: False on the processes of a multi-process run that do not write.
      overwrite: replace the directory's old contents at the first write.
      stop: the stop request to honour at call boundaries.
      checkpoint_seconds: see CHECKPOINT_SECONDS.
      loggers: more destinations of the rows (`TensorBoard`, `WandB`), opened at the first
        write.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        record: dict[str, Any],
        *,
        num_calls: int,
        steps_per_call: int,
        resumed: tuple[int, dict[str, Any]] | None = None,
        every_calls: int | None = None,
        quiet: bool = False,
        writes: bool = True,
        overwrite: bool = False,
        stop: StopSignals | None = None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        loggers: Sequence[Any] = (),
    ):
        self.out, self.record = Path(out), record
        self.num_calls, self.every, self.writes = num_calls, every_calls, writes
        self.overwrite, self.stop, self.checkpoint_seconds = overwrite, stop, checkpoint_seconds
        meta = resumed[1] if resumed else None
        self.rows: list[dict[str, Any]] = list(meta["rows"]) if meta else []
        self.wall0 = float(meta["wall_s"]) if meta else 0.0
        self.resumed_step = resumed[0] if resumed else None
        self.checkpoint = self.resumed_step  # the newest checkpoint on disk (None: none)
        self.started = False
        self.writer = self.ckpt = None
        self.loggers, self._open_loggers = list(loggers), []
        self.t0 = self.last_save = time.perf_counter()
        if writes:  # orbax (0.13 s of imports) loads while the program compiles and trains
            threading.Thread(target=preload, daemon=True).start()
        self.progress = None if quiet else Progress(num_calls * steps_per_call)

    def start(self) -> None:
        """The first write (first host call done: inputs and program are valid)."""
        self.started = True
        if not self.writes:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            clear_run_dir(self.out)
        self.ckpt = Checkpointer(self.out / CHECKPOINTS)
        if self.resumed_step is not None:  # damaged newer checkpoints: written again
            self.ckpt.discard_after(self.resumed_step)
            # A finished run extended (`--resume --steps N`): its final params and summary are
            # of the shorter run; the run writes new ones when it ends.
            clear_outputs(self.out)
        write_json(self.out / CONFIG, self.record)
        self.writer = MetricsWriter(self.out / METRICS, self.rows)
        for logger in self.loggers:
            logger.open(self.out, self.record, self.rows)
            self._open_loggers.append(logger)

    def wall_s(self) -> float:
        return self.wall0 + time.perf_counter() - self.t0

    def stop_signal(self) -> int | None:
        """The stop request at this call boundary: this process's signal, or in a multi-process
        run any process's (`loops.agreed`: all stop at the same boundary; one process that went
        on would wait in its next collective for ever, and the others with it)."""
        from inject_rl.loops import agreed

        mine = self.stop.received if self.stop is not None else None
        return agreed(mine or 0) or None

    def __call__(self, call: int, metrics: dict[str, Any], state: Any = None) -> None:
        signum = self.stop_signal()
        if signum is not None and not self.started:
            # Asked to stop while compiling or during the first call: nothing is written (an
            # `--overwrite`n run's old contents stay; a resumed run keeps its checkpoints).
            raise Stopped(signum, self.checkpoint if self.writes else None)
        if not self.started:
            self.start()
        wall = self.wall_s()
        rows = [{"step": 0, "wall_s": wall, **r} for r in member_rows(metrics)]
        self.rows.extend(rows)
        row = max(rows, key=_return)  # a population's progress line: its best member
        if self.progress is not None:
            self.progress.update(row)
        stopping = signum is not None
        if self.writes:
            for r in rows:
                self.writer.write(r)
            logged = rows[0] if len(rows) == 1 else _prefixed(rows)
            for logger in self._open_loggers:
                logger.write(logged)
            done = call + 1
            if self.every is None:
                due = time.perf_counter() - self.last_save >= self.checkpoint_seconds
            else:
                due = done % self.every == 0
            if state is not None and (due or stopping or done == self.num_calls):
                # `state` is donated to the next call: `save` copies it to the host first.
                self.ckpt.save(
                    done,
                    state,
                    {"next_call": done, "rows": json_safe(self.rows), "wall_s": row["wall_s"]},
                )
                self.checkpoint = done
                self.last_save = time.perf_counter()
        if stopping:
            raise Stopped(signum, self.checkpoint if self.writes else None)

    def close(self) -> None:
        """Closes the files (idempotent; safe after a failed `start`)."""
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        for f in (self.writer, self.ckpt, *self._open_loggers):
            if f is not None:
                f.close()
        self.writer = self.ckpt = None
        self._open_loggers = []


def member_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics.jsonl rows of one host call: one row, or for a population (`[iterations,
    M]` arrays) one row per member, each with its index as `member`."""
    import numpy as np

    size = np.shape(metrics.get("step", ()))
    if len(size) < 2:
        return [summarize_call(metrics)]
    return [
        {"member": i, **summarize_call({k: np.asarray(v)[:, i] for k, v in metrics.items()})}
        for i in range(size[1])
    ]


def _return(row: dict[str, Any]) -> float:
    value = row.get("episode_return")
    return value if isinstance(value, float) and value == value else float("-inf")


def _prefixed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A population's rows as one logger row: `step`, `wall_s`, then `member<i>/<name>`."""
    out = {"step": rows[0]["step"], "wall_s": rows[0]["wall_s"]}
    for r in rows:
        out.update({f"member{r['member']}/{k}": v for k, v in r.items() if k not in out})
    return out


def clear_outputs(out: str | os.PathLike) -> None:
    """Deletes a run's final params and summary (a resumed run writes them again at its end)."""
    out = Path(out)
    (out / SUMMARY).unlink(missing_ok=True)
    if (out / PARAMS).is_dir():
        shutil.rmtree(out / PARAMS)
