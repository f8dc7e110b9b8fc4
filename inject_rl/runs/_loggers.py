"""Metrics rows to the tools users already read them with: TensorBoard and Weights & Biases.

metrics.jsonl stays the run's record (resume, plots and tests read it); a logger gets the same
rows, after they are written there. A logger is built when the run is configured, so a missing
library is a one-line error before anything is written (`MissingExtra`), and opened at the run's
first write (`Run.start`), so a run refused or failed before it leaves nothing behind.

A resumed run continues the metrics from its checkpoint, so rows an interrupted process logged
after that checkpoint are logged again: TensorBoard discards the old ones (`purge_step`); an
online W&B run ignores steps it already has (it takes increasing steps only), which on in-graph
envs are bitwise the same values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inject_rl.runs._files import TENSORBOARD


class MissingExtra(ValueError):
    """A logging library that is not installed (names the extra to install)."""


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """A row's finite numbers but `step` (NaN means "no value in this call")."""
    numbers = {k: v for k, v in row.items() if k != "step" and not isinstance(v, bool)}
    return {
        k: float(v) for k, v in numbers.items() if isinstance(v, int | float) and math.isfinite(v)
    }


class TensorBoard:
    """Writes each row as TensorBoard scalars at its env step, to `<run>/tb` (tensorboardX).

    Raises:
      MissingExtra: tensorboardX is not installed.
    """

    def __init__(self):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise MissingExtra(
                "--tensorboard needs tensorboardX: pip install 'inject-rl[tensorboard]'"
            ) from None
        self._cls, self._writer = SummaryWriter, None

    def open(self, out: Path, record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]):
        """Starts writing `out/tb`; `rows`: those a resumed run restored (already logged)."""
        # Events an interrupted process wrote after the checkpoint are discarded by TensorBoard.
        purge = int(rows[-1].get("step", 0)) + 1 if rows else None
        self._writer = self._cls(str(out / TENSORBOARD), purge_step=purge)

    def write(self, row: Mapping[str, Any]) -> None:
        step = int(row.get("step", 0))
        for name, value in _scalars(row).items():
            self._writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class WandB:
    """Logs each row to a Weights & Biases run at its env step; config.json as the W&B config.

    The W&B run lives in `<run>/wandb` and its id is kept in config.json (`record["wandb"]`),
    so `--resume` continues the same W&B run. `WANDB_MODE=offline` keeps it on disk
    (`wandb sync` uploads it later).

    Args:
      project: the W&B project.
      run_id: the W&B run id (a resumed run passes its own).

    Raises:
      MissingExtra: wandb is not installed.
    """

    def __init__(self, project: str, run_id: str):
        try:
            import wandb
        except ImportError:
            raise MissingExtra("--wandb needs wandb: pip install 'inject-rl[wandb]'") from None
        if not project.strip() or any(c in project for c in "/\\#?%:"):
            raise ValueError(f"--wandb takes a W&B project name, got {project!r}")
        self._wandb, self.project, self.run_id, self._run = wandb, project, run_id, None

    def open(self, out: Path, record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]):
        wandb = self._wandb
        self._run = wandb.init(
            project=self.project,
            id=self.run_id,
            resume="allow",
            name=out.name,
            dir=str(out),
            config=dict(record),
            # No console capture: the run's own progress lines stay as they are.
            settings=wandb.Settings(console="off", quiet=True, disable_git=True, save_code=False),
        )

    def write(self, row: Mapping[str, Any]) -> None:
        self._run.log(_scalars(row), step=int(row.get("step", 0)))

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
