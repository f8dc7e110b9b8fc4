"""A run directory's layout and its JSON files (written atomically, NaN/inf as null)."""

from __future__ import annotations

import json
import math
import numbers
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "config.json"  # what reproduces the run
METRICS = "metrics.jsonl"  # one object per host call
SUMMARY = "summary.json"  # eval_return, steps, wall_s, compile_s
CHECKPOINTS = "checkpoints"  # orbax CheckpointManager directory
PARAMS = "params"  # the final params (what `eval` evaluates)
TENSORBOARD = "tb"  # optional TensorBoard event files
WANDB = "wandb"  # optional Weights & Biases files
ERROR_LOG = "error.log"  # the traceback of a run that failed
PLOT = "plot.png"  # `inject-rl plot RUN` by default
# Everything a run writes in its directory (its lock file aside): what `--overwrite` replaces.
RUN_FILES = frozenset(
    (CONFIG, METRICS, SUMMARY, CHECKPOINTS, PARAMS, TENSORBOARD, WANDB, ERROR_LOG, PLOT)
)


def json_safe(x: Any) -> Any:
    """`x` with numpy scalars/arrays as Python values, tuples as lists and NaN/inf as None.

    >>> json_safe({"a": np.float32(float("nan")), "b": (1, np.int32(2)), "c": np.ones(2)})
    {'a': None, 'b': [1, 2], 'c': [1.0, 1.0]}
    """
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x) if math.isfinite(x) else None
    raise TypeError(f"cannot write {type(x).__name__} as JSON: {x!r}")


def dumps(x: Any) -> str:
    """Strict JSON (no NaN tokens) of `json_safe(x)`."""
    return json.dumps(json_safe(x), allow_nan=False)


def write_json(path: str | os.PathLike, x: Any) -> None:
    """Writes `x` as indented JSON atomically (temporary file, then rename)."""
    path = Path(path)
    # Created as open() would (0666 less the umask): mkstemp's 0600 left config.json and
    # summary.json unreadable to the group, unlike the run's other files.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(json_safe(x), f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    """The JSON object in `path`, or None when the file does not exist.

    Raises:
      ValueError: the file is not valid JSON (names the file).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
