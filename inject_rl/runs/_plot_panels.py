"""Which series `inject-rl plot` draws as panels, and the caption that lists the rest (those
that hold one value over a run) and says how the lines were made."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inject_rl.runs._plot_data import Group, finite_values
from inject_rl.runs._plot_style import number

RETURN = "episode_return"
# The signals schedules read (inject_rl.signals.SIGNAL_NAMES without the episode statistics and
# the step), named here so that a plot imports no jax; tests/runs/test_plot.py keeps them in step.
SIGNALS = ("kl", "entropy", "loss", "value_loss", "grad_norm", "td_error")


def choose_panels(groups: list[Group], metrics: Sequence[str]) -> tuple[list[str], dict]:
    """The series drawn, and those that hold one value within every group (name -> {value:
    [group indices]}), which the caption lists instead. The return is always drawn, and so are
    the `metrics` asked for."""
    keys = {k for g in groups for rows in g.traces for r in rows for k in r}
    unknown = [m for m in metrics if m not in keys and m != RETURN]
    if unknown:  # it used to draw an empty panel of that name and exit 0
        raise ValueError(
            f"--metric {unknown[0]!r}: no run logged it; their metrics: {', '.join(sorted(keys))}"
        )
    hp = sorted(
        (k for k in keys if k.startswith("hp/")), key=lambda k: (k != "hp/learning_rate", k)
    )
    asked = [m for m in metrics if m != RETURN]
    panels, constants = [RETURN, *asked], {}
    for name in [s for s in SIGNALS if s not in asked] + [h for h in hp if h not in asked]:
        found = {}  # group index -> its distinct finite values (all its seeds or members)
        for i, g in enumerate(groups):
            v = np.unique(np.concatenate([finite_values(r.rows, name) for r in g.runs]))
            if v.size:
                found[i] = v
        if any(v.size > 1 for v in found.values()):
            panels.append(name)
        elif found:
            by_value: dict[float, list[int]] = {}
            for i, v in found.items():
                by_value.setdefault(float(v[0]), []).append(i)
            constants[name] = by_value
    return panels, constants


def caption_text(groups: list[Group], constants: dict, smooth_weight: float, spread: str) -> str:
    """Constant series as "name = value" (with the runs they hold for where runs differ), then
    how the lines were made."""
    items = []
    for name, by_value in sorted(constants.items(), key=lambda kv: not kv[0].startswith("hp/")):
        short = name.removeprefix("hp/")
        if len(by_value) == 1 and len(next(iter(by_value.values()))) == len(groups):
            items.append(f"{short} = {number(next(iter(by_value)))}")
        else:
            held = [
                f"{number(v)} ({', '.join(groups[i].label for i in idx)})"
                for v, idx in by_value.items()
            ]
            items.append(f"{short} = {' / '.join(held)}")
    notes = []
    if smooth_weight > 0:
        notes.append(f"signals smoothed by an EMA of weight {smooth_weight} (hp/* as logged)")
    if any(len(g.runs) > 1 for g in groups):
        across = "min to max" if spread == "range" else "mean -+ one std"
        notes.append(f"shaded: {across} over seeds")
    if any(g.members for g in groups):
        notes.append("thick: the best member (final smoothed return); v: a member copied another")
    lines = []
    if items:
        lines.append("Constant: " + ", ".join(items) + ".")
    if notes:
        text = "; ".join(notes)
        lines.append(text[0].upper() + text[1:] + ".")
    return "\n".join(lines)
