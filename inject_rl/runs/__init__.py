"""Run directories: config, metrics.jsonl, summary, orbax checkpoints, plots, progress, the
writer's lock, checks before a run and stopping on a signal.

Agent-agnostic utilities used by the `inject-rl` CLI (`inject_rl.cli`); they know nothing about a
specific agent's state beyond it being a pytree of arrays.
"""

from inject_rl.runs._check import check_run_dir, clear_run_dir
from inject_rl.runs._checkpoint import (
    Checkpointer,
    CorruptCheckpoint,
    host_copy,
    load_params,
    preload,
    save_params,
)
from inject_rl.runs._files import (
    CHECKPOINTS,
    CONFIG,
    ERROR_LOG,
    METRICS,
    PARAMS,
    PLOT,
    RUN_FILES,
    SUMMARY,
    TENSORBOARD,
    WANDB,
    dumps,
    json_safe,
    read_json,
    write_json,
)
from inject_rl.runs._lock import (
    LOCK,
    RunInUse,
    RunLock,
    check_not_in_use,
    claim_run_dir,
    is_empty,
    numbered,
    writable_error,
)
from inject_rl.runs._loggers import MissingExtra, TensorBoard, WandB
from inject_rl.runs._metrics import MetricsWriter, read_metrics, summarize_call
from inject_rl.runs._plot import plot_runs, runs_figure
from inject_rl.runs._progress import Progress
from inject_rl.runs._run import CHECKPOINT_SECONDS, Run
from inject_rl.runs._stop import Stopped, StopSignals

__all__ = [
    "CHECKPOINTS",
    "ERROR_LOG",
    "PLOT",
    "RUN_FILES",
    "WANDB",
    "CHECKPOINT_SECONDS",
    "CONFIG",
    "LOCK",
    "METRICS",
    "PARAMS",
    "SUMMARY",
    "TENSORBOARD",
    "Checkpointer",
    "CorruptCheckpoint",
    "MetricsWriter",
    "MissingExtra",
    "Progress",
    "Run",
    "RunInUse",
    "RunLock",
    "StopSignals",
    "Stopped",
    "TensorBoard",
    "WandB",
    "check_not_in_use",
    "check_run_dir",
    "claim_run_dir",
    "is_empty",
    "clear_run_dir",
    "dumps",
    "host_copy",
    "json_safe",
    "load_params",
    "numbered",
    "plot_runs",
    "runs_figure",
    "preload",
    "read_json",
    "read_metrics",
    "save_params",
    "summarize_call",
    "writable_error",
    "write_json",
]
