"""metrics.jsonl: one row per host call, reduced from the call's per-iteration metrics."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inject_rl.runs._files import dumps

# Episode statistics are means over the episodes that finished; weight them by `episode_count`.
_EPISODE_MEANS = ("episode_return", "episode_length")


def summarize_call(metrics: Mapping[str, Any]) -> dict[str, float]:
    """One row from a host call's metrics (`name -> [iterations]` arrays).

    `step` and `hp/*` (hyperparameters) are the call's last values, `episode_count` its sum,
    `pbt/source` (a population member's lineage) the member it copied last in the call (-1:
    none) with `pbt/copies` the number of copies,
    episode statistics their mean weighted by `episode_count` (NaN when no episode finished),
    everything else the mean of its finite values (NaN when there are none).

    >>> row = summarize_call({"step": np.array([64, 128]), "loss": np.array([1.0, np.nan]),
    ...                       "episode_return": np.array([10.0, 20.0]),
    ...                       "episode_count": np.array([1.0, 3.0]),
    ...                       "hp/learning_rate": np.array([1e-3, 5e-4])})
    >>> row["step"], row["loss"], row["episode_return"], row["hp/learning_rate"]
    (128, 1.0, 17.5, 0.0005)
    """
    row: dict[str, Any] = {}
    counts = np.asarray(metrics.get("episode_count", ()), np.float64).reshape(-1)
    for name, value in metrics.items():
        x = np.asarray(value, np.float64).reshape(-1)
        if x.size == 0:
            continue
        if name == "step" or name.startswith("hp/"):
            row[name] = x[-1]
        elif name == "pbt/source":  # lineage: the member copied last in the call, else -1
            copies = x[x >= 0]
            row[name] = copies[-1] if copies.size else -1.0
            row["pbt/copies"] = float(copies.size)
        elif name == "episode_count":
            row[name] = x.sum()
        elif name in _EPISODE_MEANS and counts.size == x.size:
            w = np.where(np.isfinite(x), counts, 0.0)
            row[name] = np.sum(np.where(w > 0, x, 0.0) * w) / w.sum() if w.sum() > 0 else np.nan
        else:
            finite = x[np.isfinite(x)]
            row[name] = finite.mean() if finite.size else np.nan
    last = {k for k in row if k == "step" or k.startswith("hp/")}
    if "pbt/source" in row:
        row["pbt/source"] = int(row["pbt/source"])
    # Values read as float32 keep their shortest float32 text (0.9, not 0.8999999761581421).
    row = {
        k: _f32(v) if k in last else v if isinstance(v, int) else float(v) for k, v in row.items()
    }
    if "step" in row:
        row["step"] = int(row["step"])
    return row


def _f32(x: float) -> float:
    return float(str(np.float32(x))) if np.isfinite(x) else float(x)


class MetricsWriter:
    """Appends rows to metrics.jsonl, one JSON object a line, flushed after each."""

    def __init__(self, path: str | os.PathLike, rows: Iterable[Mapping[str, Any]] = ()):
        """Opens `path`, replacing its contents with `rows` (those of a restored checkpoint)."""
        self.path = Path(path)
        self._file = open(self.path, "w")  # noqa: SIM115 - closed by `close`
        for row in rows:
            self.write(row)

    def write(self, row: Mapping[str, Any]) -> None:
        self._file.write(dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl (None for NaN); a torn last line (killed writer) is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
