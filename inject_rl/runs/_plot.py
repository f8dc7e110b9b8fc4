"""Plots of runs: episode return, the signals schedules read and the hyperparameters they move,
against env steps; one colour per run, seeds as mean and spread, population members as lines."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inject_rl.runs._lock import writable_error
from inject_rl.runs._plot_data import (
    Group,
    aggregate,
    finite_values,
    group_runs,
    load_runs,
    series,
    smooth,
)
from inject_rl.runs._plot_panels import RETURN, caption_text, choose_panels
from inject_rl.runs._plot_style import format_axes, log_scale, shades

SMOOTH = 0.6  # TensorBoard's default EMA weight
SPREADS = ("range", "std")
PBT_SOURCE = "pbt/source"  # a population row: the member copied from at that iteration, or -1

_PANEL_HEIGHT = 2.6  # inches
_WIDTH = {1: 8.0, 2: 12.0}  # inches, by number of panel columns


def _check_out(out: Path) -> None:
    """Raises ValueError (one line) unless a file can be written at `out`. Writes nothing."""
    if out.is_dir():
        raise ValueError(f"cannot write plot {out}: it is a directory; name a .png file")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"cannot write plot {out}: it is not writable")
    reason = writable_error(out.parent)
    if reason is not None:
        raise ValueError(f"cannot write plot {out}: {reason}")


def _best_member(group: Group, smooth_weight: float) -> int | None:
    """The member with the highest final smoothed episode return; None without returns."""
    finals = {}
    for m, rows in group.members.items():
        _, y = smooth(*series(rows, RETURN), smooth_weight)
        if y.size:
            finals[m] = y[-1]
    return max(finals, key=finals.__getitem__) if finals else None


def _copied(row: dict) -> bool:
    source = row.get(PBT_SOURCE)
    return source is not None and source >= 0


def _draw(ax, name: str, group: Group, color, weight: float, spread: str, best) -> None:
    """One group's line(s) in one panel."""
    if group.members:
        tints = shades(color, len(group.members))
        for tint, (m, rows) in zip(tints, group.members.items(), strict=True):
            x, y = smooth(*series(rows, name), weight)
            top = m == best
            c = color if top else tint
            ax.plot(
                x, y, color=c, lw=2.0 if top else 0.8, zorder=3 if top else 2, gid=f"m{m}",
                marker=_lone(x),
            )  # fmt: skip
            copies = [r["step"] for r in rows if "step" in r and _copied(r)]
            if name == RETURN and copies and x.size:
                ax.scatter(copies, np.interp(copies, x, y), marker="v", s=16, color=c, zorder=4)
        return
    curves = [c for c in (smooth(*series(r.rows, name), weight) for r in group.runs) if c[0].size]
    agg = aggregate(curves, spread) if len(curves) > 1 else None
    if agg is not None:
        grid, mean, low, high = agg
        ax.plot(grid, mean, color=color, lw=1.5)
        ax.fill_between(grid, low, high, color=color, alpha=0.2, lw=0)
        return
    for x, y in curves:  # one run; or seeds with no step in common, each its own line
        ax.plot(x, y, color=color, lw=1.5 if len(curves) == 1 else 0.8, marker=_lone(x))


def _lone(x) -> str | None:
    """A marker for a series of one point, which a line alone never draws (a run of one host
    call showed an empty return panel)."""
    return "o" if np.size(x) == 1 else None


def runs_figure(
    dirs: Sequence[str | os.PathLike],
    *,
    smooth_weight: float = SMOOTH,
    spread: str = "range",
    metrics: Sequence[str] = (),
):
    """A matplotlib Figure of runs' metrics.jsonl against env steps.

    Panels: `episode_return`, then the signals schedules read (kl, entropy, loss, value_loss,
    grad_norm, td_error) and each `metrics` asked for, then the `hp/*` hyperparameters; a signal
    or hyperparameter that holds one value within every run is listed in the caption instead.
    One colour per run in every panel, one legend. Runs whose config.json differ only by seed
    are one line, their mean, with their spread shaded. A population run (rows carrying
    "member") draws each member thinly in a tint of its colour and its best member thick.

    Args:
      dirs: run directories holding a metrics.jsonl (and a config.json to group seeds by).
      smooth_weight: EMA weight in [0, 1) for every series but `hp/*` (0: none).
      spread: over seeds, "range" (min to max) or "std" (mean -+ one standard deviation).
      metrics: further metrics.jsonl keys to draw, each its own panel.

    Returns:
      The Figure (not attached to pyplot; nothing to close).

    Raises:
      ValueError: a bad option, a directory without metrics.jsonl, or no rows at all.
    """
    if not 0 <= smooth_weight < 1:
        raise ValueError(f"smooth_weight must be in [0, 1), got {smooth_weight=}")
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread=}")
    from matplotlib import rcParams
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    groups = group_runs(load_runs(dirs))
    panels, constants = choose_panels(groups, list(metrics))
    caption = caption_text(groups, constants, smooth_weight, spread)
    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    colors = [cycle[i % len(cycle)] for i in range(len(groups))]
    best = [_best_member(g, smooth_weight) if g.members else None for g in groups]

    n = len(panels)
    ncols = 1 if n <= 3 else 2
    nrows = math.ceil(n / ncols)
    width = _WIDTH[ncols]
    caption = "\n".join(textwrap.fill(line, int(width * 15)) for line in caption.splitlines())
    legend_cols = min(len(groups), 3 * ncols)
    legend_h = 0.3 * math.ceil(len(groups) / legend_cols) + 0.15
    caption_h = 0.17 * (caption.count("\n") + 1) + 0.15 if caption else 0.0
    height = nrows * _PANEL_HEIGHT + legend_h + caption_h
    fig = Figure(figsize=(width, height))

    first = None
    for i, name in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1, sharex=first)
        first = first or ax
        for g, color, top in zip(groups, colors, best, strict=True):
            w = 0.0 if name.startswith("hp/") else smooth_weight
            _draw(ax, name, g, color, w, spread, top)
        values = np.concatenate([finite_values(rows, name) for g in groups for rows in g.traces])
        format_axes(ax, log_scale(name, values))
        ax.set_title(name, fontsize=9)  # centred: the top left holds a "x10^-6" scale
        ax.grid(alpha=0.3)
        bottom = i + ncols >= n  # no panel below it in its column
        ax.tick_params(labelbottom=bottom)
        if bottom:
            ax.set_xlabel("env steps")

    handles, labels = [], []
    for g, color, top in zip(groups, colors, best, strict=True):
        line = Line2D([], [], color=color, lw=2.0)
        if g.members:
            handles.append(line)
            best_text = "" if top is None else f", best {top}"
            labels.append(f"{g.label} ({len(g.members)} members{best_text})")
        elif len(g.runs) > 1:
            handles.append((Patch(color=color, alpha=0.2, lw=0), line))  # band under the mean
            labels.append(f"{g.label} ({len(g.runs)} seeds)")
        else:
            handles.append(line)
            labels.append(g.label)
    fig.legend(handles, labels, loc="upper center", ncol=legend_cols, frameon=False, fontsize=9)
    if caption:
        fig.text(0.01, 0.15 / height / 2, caption, fontsize=8, ha="left", va="bottom")
    fig.tight_layout(rect=(0, caption_h / height, 1, 1 - legend_h / height))
    return fig


def plot_runs(
    dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    smooth_weight: float = SMOOTH,
    spread: str = "range",
    metrics: Sequence[str] = (),
) -> Path:
    """Writes `runs_figure(dirs, ...)` as a PNG (100 dpi).

    Args:
      dirs: run directories holding a metrics.jsonl.
      out: the PNG file to write.
      smooth_weight, spread, metrics: as `runs_figure`.

    Returns:
      The path written.

    Raises:
      ValueError: `out` cannot be written (a directory, under a file, not writable), checked
        before anything is read; or as `runs_figure`.
    """
    out = Path(out)
    _check_out(out)
    fig = runs_figure(dirs, smooth_weight=smooth_weight, spread=spread, metrics=metrics)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=100)
    except OSError as e:  # e.g. a full disk: one line, like the checks above
        raise ValueError(f"cannot write plot {out}: {e.strerror or e}") from None
    return out
