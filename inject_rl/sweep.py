"""Sweeps: every (hyperparameter values, seed) cell of a grid, trained and scored.

On in-graph envs (`phys2d/*`) every cell is a member of one population (the member axis of
`inject_rl.agents.train_population`): one compiled program trains them all at once, because
hyperparameter values and schedule constants are state, not code. On host envs the cells run in
turn. Each cell is scored by greedy episodes of its final policy; `solved` compares that score
with the env's threshold (gymnasium's `reward_threshold`, e.g. 475 for CartPole-v1; -250 for
Pendulum, which has none), and `steps_to_solve` is the first env step whose training return
reached it.

Example (a few seconds of CPU):

    >>> from inject_rl import sweep
    >>> from inject_rl.agents import get
    >>> ppo = get("ppo")
    >>> cfg = ppo.config_for("phys2d/CartPole-v1", total_steps=2_000)
    >>> result = sweep.run(ppo, cfg, grid={"lr_init": [1e-4, 1e-3]}, seeds=2)
    >>> len(result.cells), sorted(result.cells[0])[:3]
    (4, ['at_bound', 'diverged', 'eval_return'])
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Thresholds for envs gymnasium gives none (the project's convention, as in its learning tests).
_FALLBACK_SOLVED = {"Pendulum": -250.0}


def solved_threshold(env_id: str) -> float | None:
    """The return that counts as solved on `env_id`: gymnasium's `reward_threshold`, else the
    project's convention (Pendulum: -250), else None."""
    import gymnasium

    try:
        threshold = gymnasium.spec(env_id).reward_threshold
    except Exception:  # an id gymnasium does not know (a custom module:Env id not imported yet)
        threshold = None
    if threshold is not None:
        return float(threshold)
    name = env_id.split("/")[-1].split(":")[-1].split("-")[0]
    return _FALLBACK_SOLVED.get(name)


@dataclasses.dataclass
class SweepResult:
    """A sweep's cells and how to read them.

    Attributes:
      grid: field -> the values swept (in the order given).
      seeds: the seeds of every grid point.
      cells: one dict per (values, seed): the field values, `seed`, `eval_return` (greedy, final
        policy), `final_return` (mean training return over the last tenth of training),
        `solved`, `steps_to_solve` (NaN if never), `diverged`, `at_bound` (fraction of updates at
        which each bounded scheduled hyperparameter sat at its min or max: "name=fraction").
      metrics: per cell, name -> per-iteration values.
      solved_at: the threshold used (None: no threshold, `solved` is False everywhere).
      compile_s, train_s: seconds compiling and training (all cells).
    """

    grid: dict[str, list[float]]
    seeds: list[int]
    cells: list[dict[str, Any]]
    metrics: list[dict[str, np.ndarray]]
    solved_at: float | None
    compile_s: float
    train_s: float

    def points(self) -> list[dict[str, Any]]:
        """One row per grid point, over its seeds: solved fraction, mean and std of the greedy
        return, mean final training return, median steps-to-solve of the seeds that got there,
        diverged count, time at a bound."""
        rows = []
        for values in _points(self.grid):
            cells = [c for c in self.cells if all(c[k] == v for k, v in values.items())]
            evals = [c["eval_return"] for c in cells if math.isfinite(c["eval_return"])]
            finals = [c["final_return"] for c in cells if math.isfinite(c["final_return"])]
            steps = [c["steps_to_solve"] for c in cells if math.isfinite(c["steps_to_solve"])]
            rows.append(
                {
                    **values,
                    "solved": sum(c["solved"] for c in cells) / len(cells),
                    "eval_mean": statistics.fmean(evals) if evals else math.nan,
                    "eval_std": statistics.pstdev(evals) if len(evals) > 1 else 0.0,
                    "final_return": statistics.fmean(finals) if finals else math.nan,
                    "steps_to_solve": statistics.median(steps) if steps else math.nan,
                    "diverged": sum(c["diverged"] for c in cells),
                    "at_bound": _mean_at_bound([c["at_bound"] for c in cells]),
                }
            )
        return rows

    def table(self) -> str:
        """The grid points as a Markdown table."""
        names = list(self.grid)
        head = [*names, "solved", "greedy return", "final training return"]
        head += ["steps to solve (median)", "diverged"]
        head.append("time at bound")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        n = len(self.seeds)
        for row in self.points():
            cells = [f"{row[k]:g}" for k in names]
            cells += [
                f"{row['solved']:.0%} of {n}" if self.solved_at is not None else "—",
                f"{row['eval_mean']:.1f} ± {row['eval_std']:.1f}",
                f"{row['final_return']:.1f}",
                "—" if math.isnan(row["steps_to_solve"]) else f"{row['steps_to_solve']:,.0f}",
                str(row["diverged"]),
                row["at_bound"] or "—",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write_csv(self, path: str | Path) -> None:
        """Every cell as one CSV row."""
        fields = [*self.grid, "seed", "eval_return", "final_return", "solved"]
        fields += ["steps_to_solve", "diverged", "at_bound"]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.cells)

    def heatmap(self, path: str | Path) -> None:
        """A PNG: solved fraction (or mean greedy return without a threshold) per grid point;
        one or two swept fields."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        names = list(self.grid)
        if not 1 <= len(names) <= 2:
            raise ValueError(f"a heatmap shows one or two swept fields, got {len(names)}")
        key = "solved" if self.solved_at is not None else "eval_mean"
        rows = {tuple(r[k] for k in names): r[key] for r in self.points()}
        xs = self.grid[names[-1]]
        ys = self.grid[names[0]] if len(names) == 2 else [None]
        grid = np.array(
            [[rows[(y, x) if len(names) == 2 else (x,)] for x in xs] for y in ys], float
        )
        fig = Figure(figsize=(1.2 + 1.1 * len(xs), 1.2 + 0.8 * len(ys)))
        ax = fig.add_subplot()
        image = ax.imshow(grid, cmap="viridis", aspect="auto", **_limits(key))
        for (i, j), v in np.ndenumerate(grid):
            text = f"{v:.0%}" if key == "solved" else f"{v:.0f}"
            ax.text(j, i, text, ha="center", va="center", color="w" if v < 0.5 else "k")
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
        ax.set_xlabel(names[-1])
        if len(names) == 2:
            ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
            ax.set_ylabel(names[0])
        else:
            ax.set_yticks([])
        what = f"solved (>= {self.solved_at:g}) of {len(self.seeds)} seeds"
        ax.set_title(what if key == "solved" else f"greedy return, mean of {len(self.seeds)}")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(path, dpi=100)


def _limits(key: str) -> dict[str, float]:
    return {"vmin": 0.0, "vmax": 1.0} if key == "solved" else {}


def _points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _mean_at_bound(entries: list[dict[str, float]]) -> str:
    names = sorted({k for e in entries for k in e})
    return ", ".join(f"{k} {statistics.fmean(e[k] for e in entries if k in e):.0%}" for k in names)


def run(
    agent: Any,
    cfg: Any = None,
    *,
    grid: Mapping[str, Sequence[float]],
    seeds: int | Sequence[int] = 1,
    optimizer: Callable[[Any], Any] | None = None,
    network: Callable | None = None,
    num_devices: int | None = None,
    eval_episodes: int = 20,
    solved_at: float | None = None,
    callback: Callable[..., None] | None = None,
) -> SweepResult:
    """Trains every cell of `grid` x `seeds` and scores it.

    Args:
      agent: an `Agent` or its registry name.
      cfg: the base Config (None: the agent's defaults).
      grid: numeric Config field -> values (`lr_init`, `learning_rate`, `ent_coef`, `kl_target`
        ...); every combination is a grid point.
      seeds: a count (seeds 0..n-1 offset by `cfg.seed`) or the seeds themselves.
      optimizer: `cfg -> optimizer` (default: the agent's `default_optimizer`), built per cell.
      network: the torso factory (default: the agent's).
      num_devices: devices each cell spans (in-graph envs: all cells share them).
      eval_episodes: greedy episodes scoring each cell's final policy.
      solved_at: the solved threshold (default: `solved_threshold(env_id)`).
      callback: passed to the training loop (in-graph: once for all cells per host call).

    Raises:
      ValueError: an empty grid or value list, a non-numeric or program-shaping field.
    """
    from inject_rl import agents

    agent = agents.get(agent) if isinstance(agent, str) else agent
    cfg = (agent.config() if cfg is None else cfg).validate()
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ValueError(f"a sweep needs at least one field with at least one value, got {grid}")
    if "seed" in grid:
        raise ValueError("sweep seeds with `seeds=`, not in the grid")
    seed_list = list(range(cfg.seed, cfg.seed + seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError(f"seeds must be a count >= 1 or a non-empty list, got {seeds!r}")
    grid = {k: [float(x) for x in v] for k, v in grid.items()}
    cells = [{**p, "seed": s} for p in _points(grid) for s in seed_list]
    threshold = solved_threshold(cfg.env_id) if solved_at is None else float(solved_at)
    from inject_rl import envs

    if envs.is_jax_env(cfg.env_id):
        trained = _in_graph(agent, cfg, cells, optimizer, network, num_devices, callback)
    else:
        trained = _in_turn(agent, cfg, cells, optimizer, network, num_devices, callback)
    metrics, params, configs, opt_states, compile_s, train_s = trained
    scores = _evaluate(agent, configs, params, eval_episodes, network)
    out = []
    for cell, m, score, opt_state in zip(cells, metrics, scores, opt_states, strict=True):
        out.append(
            {**cell, **score_cell(m, score, threshold), "at_bound": time_at_bound(m, opt_state)}
        )
    return SweepResult(grid, seed_list, out, metrics, threshold, compile_s, train_s)


def _in_graph(agent, cfg, cells, optimizer, network, num_devices, callback):
    from inject_rl.agents._population import train_population

    values = {k: [c[k] for c in cells] for k in cells[0]}
    res = train_population(
        agent,
        cfg,
        values=values,
        optimizer=optimizer,
        network=network,
        num_devices=num_devices,
        callback=callback,
    )
    n = len(cells)
    metrics = [{k: np.asarray(v)[:, i] for k, v in res.metrics.items()} for i in range(n)]
    params = [res.member_params(i) for i in range(n)]
    configs = [res.member_config(i) for i in range(n)]
    from inject_rl import loops

    members = loops.first_replica(res.state).members
    opt_states = [_index(members.opt_state, i) for i in range(n)]
    return metrics, params, configs, opt_states, res.compile_s, res.train_s


def _index(tree: Any, i: int) -> Any:
    import jax

    return jax.tree.map(lambda x: x[i], tree)


def _in_turn(agent, cfg, cells, optimizer, network, num_devices, callback):
    from inject_rl.agents import Diverged
    from inject_rl.agents._members import member_config

    metrics, params, configs, opt_states = [], [], [], []
    compile_s = train_s = 0.0
    for cell in cells:
        c = member_config(cfg, cell).validate()
        opt = None if optimizer is None else optimizer(c)
        try:
            res = agent.train(c, optimizer=opt, network=network, num_devices=num_devices)
        except Diverged:
            metrics.append({"diverged": np.ones(1)})
            params.append(None)
            opt_states.append(None)
        else:
            metrics.append(res.metrics)
            params.append(res.params)
            opt_states.append(res.opt_state)
            compile_s += res.compile_s
            train_s += res.train_s
        configs.append(c)
        if callback is not None:
            callback(len(metrics) - 1, metrics[-1], None)
    return metrics, params, configs, opt_states, compile_s, train_s


def _evaluate(agent, configs, params, episodes, network) -> list[float]:
    from inject_rl.agents._train import evaluate_params

    scores = []
    for c, p in zip(configs, params, strict=True):
        scores.append(math.nan if p is None else evaluate_params(agent, c, p, episodes, 0, network))
    return scores


def score_cell(metrics: Mapping[str, np.ndarray], score: float, threshold: float | None) -> dict:
    """A cell's figures from its per-iteration `metrics` and greedy return `score`:
    `eval_return`, `final_return`, `solved`, `steps_to_solve`, `diverged`."""
    diverged = bool(np.asarray(metrics.get("diverged", [0])).max() > 0)
    ret = np.asarray(metrics.get("episode_return", [np.nan]), float)
    tail = ret[-max(1, len(ret) // 10) :]
    final = float(np.nanmean(tail)) if np.isfinite(tail).any() else math.nan
    first = math.nan
    if threshold is not None and "step" in metrics:
        hit = np.flatnonzero(np.nan_to_num(ret, nan=-np.inf) >= threshold)
        if hit.size:
            first = float(np.asarray(metrics["step"])[hit[0]])
    solved = threshold is not None and not diverged and math.isfinite(score)
    return {
        "eval_return": score,
        "final_return": final,
        "solved": bool(solved and score >= threshold),
        "steps_to_solve": first,
        "diverged": diverged,
    }


def time_at_bound(metrics: Mapping[str, np.ndarray], opt_state: Any) -> dict[str, float]:
    """Fraction of updates each bounded scheduled hyperparameter spent at its min or max."""
    if opt_state is None:
        return {}
    from inject_rl.optim import bounds

    out = {}
    for name, (low, high) in bounds(opt_state).items():
        series = np.asarray(metrics.get(f"hp/{name}", []), np.float32)
        if series.size:
            at = np.isclose(series, low, rtol=1e-5, atol=0) | np.isclose(
                series, high, rtol=1e-5, atol=0
            )
            out[name] = float(at.mean())
    return out
