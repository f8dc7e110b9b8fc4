"""Whether a run may write a directory: read-only checks made before anything is compiled."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inject_rl.runs._files import CONFIG, RUN_FILES, read_json
from inject_rl.runs._lock import LOCK, check_not_in_use, is_empty, writable_error

# The keys every run's config.json record has (inject_rl.cli._build).
_RECORD_KEYS = frozenset(("format", "agent", "loop", "config"))


def check_run_dir(
    out: str | os.PathLike,
    record: dict[str, Any],
    *,
    resume: bool,
    overwrite: bool,
    identity: Sequence[str],
    locked: bool = False,
) -> dict[str, Any] | None:
    """Checks that a run described by `record` may write `out`; returns the saved record when
    resuming. Writes nothing.

    Without `resume` the directory must be absent or empty: a finished or interrupted run is
    never replaced by accident (issue 12: re-running a run's command deleted its checkpoints).
    `overwrite` allows replacing another run directory, never a directory that holds no run
    (its `config.json` must be a run's record) or anything a run does not write: it deletes the
    run's own files only (`RUN_FILES`), and refuses a directory holding others (a project
    folder with a `config.json` of its own used to be emptied).

    Args:
      out: the run directory.
      record: this run's config.json record.
      resume: continue the run saved in `out` (its identity must match `record`).
      overwrite: replace the run saved in `out`.
      identity: the record keys that must match to resume (agent, env, seed...).
      locked: this process holds `out`'s lock (`RunLock`): checking again under it.

    Raises:
      ValueError: `out` is in use, not writable, or holds something this run may not touch
        (one line, naming what to do instead).
    """
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    if not locked:
        check_not_in_use(out)
    reason = writable_error(out)
    if reason is not None:
        raise ValueError(f"cannot write run directory {out}: {reason}")
    saved = read_json(out / CONFIG)
    if saved is not None and not (isinstance(saved, dict) and _RECORD_KEYS <= saved.keys()):
        raise ValueError(
            f"{out / CONFIG} is not a run's config (a run's has the keys "
            f"{', '.join(sorted(_RECORD_KEYS))}); choose another --out"
        )
    diff = [k for k in identity if saved.get(k) != record.get(k)] if saved is not None else []
    if resume:
        if saved is None:
            raise ValueError(
                f"--resume: no checkpoint in {out} (no run there); train without --resume to start"
            )
        if diff:
            raise ValueError(
                f"--resume: {out} holds a different run ({CONFIG} differs in {', '.join(diff)})"
            )
        return saved
    if not out.exists() or is_empty(out):
        return None
    if saved is None:
        raise ValueError(
            f"{out} is not empty and holds no {CONFIG} (not a run directory); choose another --out"
        )
    if overwrite:
        others = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES | {LOCK})
        if others:
            more = f" and {len(others) - 5} more" if len(others) > 5 else ""
            shown = ", ".join(others[:5]) + more
            raise ValueError(
                f"--overwrite: {out} also holds {shown}, which no run writes; --overwrite "
                "replaces a run's own files only: move those or choose another --out"
            )
        return None
    if diff:
        raise ValueError(
            f"{out} holds a different run ({CONFIG} differs in {', '.join(diff)}); replace it "
            "with --overwrite or choose another --out"
        )
    raise ValueError(
        f"{out} already holds this run ({CONFIG}); continue it with --resume, replace it "
        "with --overwrite, or choose another --out"
    )


def clear_run_dir(out: str | os.PathLike) -> None:
    """Deletes the old run's files (`RUN_FILES`) that `--overwrite` replaces; anything else in
    `out` (its lock file, or what `check_run_dir` refused to touch) stays."""
    for p in Path(out).iterdir():
        if p.name not in RUN_FILES:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
