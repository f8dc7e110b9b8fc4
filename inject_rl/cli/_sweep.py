"""`inject-rl sweep`: a grid of Config values x seeds, trained as one program on device.

Writes to `--out`: `sweep.json` (what was run and every cell), `cells.csv`, `table.md` and
`heatmap.png` (one or two swept fields); prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
MAX_CELLS = 4096  # cells in one sweep (each is a whole training state on device)


def add_parser(sub: Any, hp_help: Any) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "sweep",
        help="train a grid of hyperparameter values x seeds and tabulate them",
        formatter_class=argparse.RawTextHelpFormatter,
        description="Train every (values, seed) cell of a grid and score each cell's final policy "
        "with greedy\nepisodes. On in-graph envs (phys2d/*) all cells train as one vmapped "
        "program (values are\nstate, not code); on host envs they run in turn. Writes "
        "sweep.json, cells.csv, table.md\nand heatmap.png to --out and prints the table.",
    )
    s.add_argument("--agent", help="agent (default: ppo)")
    s.add_argument("--env", help="gymnasium id (default: the agent's)")
    s.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="FIELD=V1,V2,...",
        help="a numeric Config field and its values (repeatable: the grid is their product),\n"
        "e.g. --grid lr_init=1e-4,3e-4,1e-3 --grid ent_coef=0,0.01",
    )
    s.add_argument("--seeds", type=int, default=3, help="seeds per grid point (default: 3)")
    s.add_argument("--seed", type=int, help="first seed (default: 0)")
    s.add_argument("--steps", type=int, help="env steps per cell (default: the agent's preset)")
    hp = s.add_argument("--hp", action="append", metavar="NAME=SPEC", help="as for train")
    s.lazy_help = {hp: hp_help}
    s.add_argument("--opt", help="optimizer: adam, adamw, sgd, rmsprop (default: Adam)")
    s.add_argument("--config", metavar="FILE", help="JSON object of Config field overrides")
    s.add_argument("--devices", type=int, help="devices every cell spans (default: 1)")
    s.add_argument(
        "--eval-episodes", type=int, default=20, metavar="N", help="greedy episodes per cell"
    )
    s.add_argument(
        "--solved-at",
        type=float,
        metavar="R",
        help="greedy return that counts as solved (default: the env's reward_threshold;\n"
        "Pendulum: -250)",
    )
    s.add_argument(
        "--out",
        help="output directory (default: runs/sweep-<agent>-<env>, numbered if taken)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress output")
    return s


def parse_grid(items: list[str]) -> dict[str, list[float]]:
    """`["lr_init=1e-4,3e-4", ...]` -> `{"lr_init": [1e-4, 3e-4]}` (numbers only, parsed, never
    evaluated).

    Raises:
      ValueError: a malformed item, a repeated field, a value that is not a finite number.
    """
    grid: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not values.strip():
            raise ValueError(f"--grid {item[:80]!r}: expected FIELD=V1,V2,... (numbers)")
        if name in grid:
            raise ValueError(f"--grid {name} given twice; give all its values in one --grid")
        parsed = []
        for text in values.split(","):
            text = text.strip()
            if not _NUMBER.match(text) or not math.isfinite(float(text)):
                raise ValueError(f"--grid {name}: {text[:40]!r} is not a finite number")
            parsed.append(float(text))
        if len(set(parsed)) != len(parsed):
            raise ValueError(f"--grid {name}: repeated values {values[:80]}")
        grid[name] = parsed
    return grid


def _claim(out: str | None, agent: str, env: str) -> Any:
    """The held lock (`runs.RunLock`) of the sweep's new directory: `--out` when it is absent or
    empty, else the first free `runs/sweep-AGENT-ENV[-N]`. Releasing it removes what it created
    if nothing was written (an interrupted or refused sweep leaves no empty directory behind).

    Raises:
      ValueError: `--out` is in use, not writable, or not empty (one line).
    """
    from inject_rl import runs

    if out is None:
        return runs.claim_run_dir(Path("runs") / f"sweep-{agent}-{env.replace('/', '-')}")
    lock = runs.RunLock(out).acquire()
    if not runs.is_empty(lock.out):
        lock.release()
        raise ValueError(
            f"--out {out} is not empty (a run, a sweep or other files); a sweep writes a new "
            "directory: choose another --out"
        )
    return lock


def command(args: Any, built: Any) -> int:
    """Runs `inject-rl sweep` for the run `built` by the CLI's `_build` (the base Config)."""
    grid = parse_grid(args.grid)
    if args.seeds is None or isinstance(args.seeds, bool) or not 1 <= args.seeds <= MAX_CELLS:
        raise ValueError(f"--seeds must be an integer in [1, {MAX_CELLS}], got {args.seeds}")
    cells = args.seeds * math.prod(len(v) for v in grid.values())
    if cells > MAX_CELLS:
        raise ValueError(f"the sweep has {cells} cells; at most {MAX_CELLS} (fewer values/seeds)")
    if args.eval_episodes is None or not 1 <= args.eval_episodes <= 10_000:
        raise ValueError(f"--eval-episodes must be in [1, 10000], got {args.eval_episodes}")
    if args.solved_at is not None and not math.isfinite(args.solved_at):
        raise ValueError(f"--solved-at must be a finite return, got {args.solved_at}")
    agent, cfg = built.agent, built.cfg
    for name in grid:
        if name not in agent.defaults():
            raise ValueError(
                f"--grid {name}: not a {agent.name} Config field; fields: "
                f"{', '.join(agent.defaults())}"
            )
    # The sweep checks every cell's values before compiling (one line on a bad one).
    from inject_rl import sweep
    from inject_rl.agents._members import member_values

    seeds = list(range(cfg.seed, cfg.seed + args.seeds))
    points = sweep._points(grid)
    member_values(
        agent,
        cfg,
        cells,
        {
            **{k: [p[k] for p in points for _ in seeds] for k in grid},
            "seed": [s for _ in points for s in seeds],
        },
    )
    lock = _claim(args.out, agent.name, cfg.env_id)
    try:
        return _run(args, built, lock.out, grid, seeds, cells)
    finally:
        lock.release()  # and the directory it created, when nothing was written


def _run(args: Any, built: Any, out: Path, grid, seeds, cells) -> int:
    from inject_rl import sweep
    from inject_rl.agents._train import Diverged
    from inject_rl.cli._train import EXIT_DIVERGED

    agent, cfg = built.agent, built.cfg
    if not args.quiet:
        print(f"sweep: {cells} cells ({agent.name} on {cfg.env_id}) -> {out}", flush=True)
    try:
        result = sweep.run(
            agent,
            cfg,
            grid=grid,
            seeds=seeds,
            optimizer=built.make_optimizer,
            num_devices=built.num_devices,
            eval_episodes=args.eval_episodes,
            solved_at=args.solved_at,
        )
    except Diverged as e:  # every cell: no table to write
        print(f"inject-rl: error: {e}; nothing written", file=sys.stderr)
        raise SystemExit(EXIT_DIVERGED) from None
    record = {
        "format": 1,
        "agent": agent.name,
        "env": cfg.env_id,
        "config": agent.config_to_json(cfg),
        "grid": grid,
        "seeds": seeds,
        "solved_at": result.solved_at,
        "compile_s": result.compile_s,
        "train_s": result.train_s,
        "points": result.points(),
        "cells": result.cells,
    }
    (out / "sweep.json").write_text(json.dumps(_jsonable(record), indent=1) + "\n")
    result.write_csv(out / "cells.csv")
    table = result.table()
    (out / "table.md").write_text(table + "\n")
    if len(grid) <= 2:
        result.heatmap(out / "heatmap.png")
    print(table)
    print(
        f"done: {cells} cells in {result.compile_s + result.train_s:.1f} s (compile "
        f"{result.compile_s:.1f} s); written to {out}"
    )
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
