"""Plots of runs: episode return and every injected hyperparameter against env steps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from inject_rl.runs._files import METRICS
from inject_rl.runs._lock import writable_error
from inject_rl.runs._metrics import read_metrics


def _labels(dirs: Sequence[Path]) -> list[str]:
    """Each run's directory name, or its last two parts where names repeat."""
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [str(Path(*d.parts[-2:])) for d in dirs]


def _check_out(out: Path) -> None:
    """Raises ValueError (one line) unless a file can be written at `out`. Writes nothing."""
    if out.is_dir():
        raise ValueError(f"cannot write plot {out}: it is a directory; name a .png file")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"cannot write plot {out}: it is not writable")
    reason = writable_error(out.parent)
    if reason is not None:
        raise ValueError(f"cannot write plot {out}: {reason}")


def plot_runs(dirs: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Writes a PNG with one subplot per series (`episode_return`, then each `hp/*`), every run
    overlaid with a legend, against env steps.

    Args:
      dirs: run directories holding a metrics.jsonl.
      out: the PNG file to write.

    Returns:
      The path written.

    Raises:
      ValueError: a directory has no metrics.jsonl, no run has any row, or `out` cannot be
        written (a directory, under a file, not writable), checked before plotting.
    """
    dirs = [Path(d) for d in dirs]
    out = Path(out)
    _check_out(out)
    runs = []
    for d in dirs:
        path = d / METRICS
        if not path.is_file():
            raise ValueError(f"{d} has no {METRICS}; is it a run directory (train --out)?")
        runs.append(read_metrics(path))
    if not any(runs):
        raise ValueError(f"no metrics rows in {', '.join(map(str, dirs))}")
    series = ["episode_return"] + sorted(
        {k for rows in runs for r in rows for k in r if k.startswith("hp/")}
    )

    import matplotlib  # lazily: only `plot` needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(series), 1, figsize=(8, 2.6 * len(series)), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], series, strict=True):
        values = []
        for label, rows in zip(_labels(dirs), runs, strict=True):
            points = [(r["step"], r[name]) for r in rows if r.get(name) is not None and "step" in r]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=label)
                values += ys
        ax.set_ylabel(name.removeprefix("hp/"))
        ax.set_title(name, fontsize=9)
        # Log scale for a positive series spanning more than a decade (a learning rate that
        # schedules move); no "1e-8+0.9" offsets on near-constant ones.
        if values and min(values) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("env steps")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=100)
    except OSError as e:  # e.g. a full disk: one line, like the checks above
        raise ValueError(f"cannot write plot {out}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return out
