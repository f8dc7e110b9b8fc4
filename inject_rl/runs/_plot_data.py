"""What `inject-rl plot` draws, before any drawing: runs read from their directories, grouped into
one colour each (a run, the seeds of one config, the members of a population run), and their
series smoothed and aggregated over seeds."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from inject_rl.runs._files import CONFIG, METRICS, read_json
from inject_rl.runs._metrics import read_metrics

Rows = list[dict[str, Any]]


class Run(NamedTuple):
    """One run directory, read."""

    dir: Path
    label: str  # its name in the legend
    config: Any  # config.json's object; None when absent or unreadable
    rows: Rows  # metrics.jsonl


class Group(NamedTuple):
    """What one colour draws: a run, the runs of one config that differ only by seed (drawn as
    mean and spread), or a population run (each member its own line)."""

    label: str
    runs: tuple[Run, ...]
    members: dict[int, Rows]  # a population run's rows by member; {} otherwise

    @property
    def traces(self) -> list[Rows]:
        """The rows of each line before aggregation: each member's, or each seed's."""
        return list(self.members.values()) if self.members else [r.rows for r in self.runs]


def _labels(dirs: Sequence[Path]) -> list[str]:
    """Each run's directory name, or its last two parts where names repeat."""
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [str(Path(*d.parts[-2:])) for d in dirs]


def load_runs(dirs: Sequence[str | os.PathLike]) -> list[Run]:
    """Reads each directory's metrics.jsonl and config.json.

    Raises:
      ValueError: a directory has no metrics.jsonl, or no run has any row.
    """
    dirs = [Path(d) for d in dirs]
    runs = []
    for d, label in zip(dirs, _labels(dirs), strict=True):
        path = d / METRICS
        if not path.is_file():
            raise ValueError(f"{d} has no {METRICS}; is it a run directory (train --out)?")
        try:
            config = read_json(d / CONFIG)
        except ValueError:  # a plot needs no config; it only groups seeds by it
            config = None
        runs.append(Run(d, label, config, read_metrics(path)))
    if not any(r.rows for r in runs):
        raise ValueError(f"no metrics rows in {', '.join(map(str, dirs))}")
    return runs


def _without_seed(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _without_seed(v) for k, v in x.items() if k != "seed"}
    if isinstance(x, list):
        return [_without_seed(v) for v in x]
    return x


def _seedless_label(runs: Sequence[Run]) -> str:
    """The first run's label without its seed token ("ppo-CartPole-v1-s0" -> "ppo-CartPole-v1"),
    else the labels' common prefix, else the first label."""
    first = runs[0]
    seed = first.config.get("seed") if isinstance(first.config, dict) else None
    if isinstance(seed, int):
        stripped = re.sub(rf"[-_](?:s|seed){seed}(?=$|[-_.])", "", first.label, count=1)
        if stripped != first.label:
            return stripped
    prefix = os.path.commonprefix([r.label for r in runs]).rstrip("-_. ")
    return prefix or first.label


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """One group per run, except that runs whose config.json are equal without their "seed" keys
    form one group (a run without config.json stays alone); a run whose rows carry "member" is a
    population group of its own. Groups keep the order of their first run."""
    slots: list[list[Run]] = []
    by_config: dict[str, int] = {}
    members_of: dict[int, dict[int, Rows]] = {}
    for run in runs:
        members: dict[int, Rows] = {}
        for row in run.rows:
            if isinstance(row.get("member"), int):
                members.setdefault(row["member"], []).append(row)
        if members:
            members_of[len(slots)] = dict(sorted(members.items()))
            slots.append([run])
            continue
        key = None
        if isinstance(run.config, dict):
            key = json.dumps(_without_seed(run.config), sort_keys=True)
        if key is not None and key in by_config:
            slots[by_config[key]].append(run)
            continue
        if key is not None:
            by_config[key] = len(slots)
        slots.append([run])
    groups = []
    for i, slot in enumerate(slots):
        label = slot[0].label if len(slot) == 1 else _seedless_label(slot)
        groups.append(Group(label, tuple(slot), members_of.get(i, {})))
    return groups


def series(rows: Rows, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Env steps and values of `name` in the rows that have both (NaN where the value is null),
    ordered by step.

    >>> series([{"step": 64, "kl": None}, {"step": 32, "kl": 0.5}, {"kl": 1.0}], "kl")
    (array([32., 64.]), array([0.5, nan]))
    """
    pts = [(r["step"], r[name]) for r in rows if "step" in r and name in r]
    x = np.array([p[0] for p in pts], np.float64)
    y = np.array([np.nan if p[1] is None else p[1] for p in pts], np.float64)
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def smooth(x: np.ndarray, y: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """The finite points of a series, smoothed by a debiased exponential moving average
    (TensorBoard's: `weight` 0 draws the values, 0.9 heavily smoothed).

    Rows where the value is NaN (no episode finished in that host call) are dropped, not zeroed.

    >>> x, y = smooth(np.array([0.0, 1.0, 2.0]), np.array([1.0, np.nan, 3.0]), 0.5)
    >>> x.tolist(), np.round(y, 4).tolist()
    ([0.0, 2.0], [1.0, 2.3333])
    """
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if weight == 0 or y.size == 0:
        return x, y
    out = np.empty_like(y)
    acc = 0.0
    for i, v in enumerate(y):
        acc = weight * acc + (1 - weight) * v
        out[i] = acc / (1 - weight ** (i + 1))
    return x, out


def aggregate(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], spread: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and spread over curves (one per seed), at every step any of them has within the steps
    all of them reached (each curve interpolated there); None when those steps are empty.

    Args:
      curves: (steps, values) of each seed, finite and non-empty.
      spread: "range" (min to max over seeds) or "std" (mean -+ one standard deviation).

    Returns:
      steps, mean, lower and upper edge of the spread.

    >>> c = [(np.array([0.0, 2.0]), np.array([0.0, 2.0])), (np.array([1.0, 3.0]), np.ones(2))]
    >>> [v.tolist() for v in aggregate(c, "range")]
    [[1.0, 2.0], [1.0, 1.5], [1.0, 1.0], [1.0, 2.0]]
    """
    start = max(x[0] for x, _ in curves)
    stop = min(x[-1] for x, _ in curves)
    grid = np.unique(np.concatenate([x[(x >= start) & (x <= stop)] for x, _ in curves]))
    if grid.size == 0:
        return None
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    mean = ys.mean(axis=0)
    if spread == "std":
        std = ys.std(axis=0)
        return grid, mean, mean - std, mean + std
    return grid, mean, ys.min(axis=0), ys.max(axis=0)


def finite_values(rows: Rows, name: str) -> np.ndarray:
    """Every finite value of `name` in the rows."""
    y = series(rows, name)[1]
    return y[np.isfinite(y)]
