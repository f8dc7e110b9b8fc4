"""Robustness to the initial learning rate, per agent: constant, each applicable rule, and PBT.

For one agent and env, a grid of initial learning rates fixed before any result is seen:
log-spaced from the preset's rate / 100 to its rate x 10 (1000x wide), x seeds, for every
variant. Every (rate, seed) cell of a variant is a member of ONE compiled program
(`inject_rl.agents.train_population`: rates and schedule constants are state). PBT runs one
population of `--pbt-size` members per cell, all cells side by side (`PBT(groups=...)`), every
member starting at the cell's rate; its budget is the same env steps per member.

Reported per variant: solved cells (greedy return of the final policy >= the env's threshold; for
PBT the population's best member), median steps-to-solve (first env step whose training return
reached the threshold; PBT: any member of the population), and the time at a bound: for a
bounded rule the fraction of updates at its min or max, for `bandit` the fraction on its extreme
arms, for `progress` the fraction at either end of its range (`lr_init` or `lr_final`), for PBT the
members' rates over time (the best member's rate at 10%, 50% and 100% of training, relative to
the cell's initial rate). A variant at a bound for most updates is a constant in disguise and
carries no claim.

Rules per agent: PPO `kl_target` (its default); DQN and IMPALA `progress` (their default;
`lr_final` keeps the preset's ratio to `lr_init`, so the rule's range moves with the grid as
`kl_target`'s relative bounds do); every agent `plateau` (`schedules.plateau` from the cell's
rate, its defaults) and `bandit` (five arms: the cell's rate x 1/10, 1/3, 1, 3, 10), for SAC one
schedule per part (actor, critic, alpha, each from its own rate); every agent `hypergradient`
(Baydin et al. 2018, `schedules.hypergradient` with its defaults: beta 0.01, bounds [init / 1000,
1000 x init], the optimizer wrapped in `optim.update_alignment`; SAC: one wrapper per part, so
the actor's, critic's and alpha's rates each follow their own updates' alignment).

    python scripts/robustness.py --agent ppo --env phys2d/CartPole-v1 [--seeds 5] [--pbt-size 4]
        [--variants constant,kl_target,plateau,bandit,hypergradient,pbt] [--steps 100000]
        [--first-seed 0] [--out docs/figures]

Prints a Markdown table (command, date and machine in its caption) and writes a heatmap PNG of
the solved fraction per (variant, rate).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from inject_rl import loops, optim, sweep
from inject_rl import schedules as S
from inject_rl.agents import PBT, get, sac, train_population
from inject_rl.agents._train import evaluate_params


@dataclasses.dataclass(frozen=True)
class Setup:
    """How one agent's learning rate is set for each variant."""

    preset_lr: Callable[[Any], float]  # the preset's rate
    # (preset Config, initial rate) -> per-member Config values
    fields: Callable[[Any, float], dict[str, float]]
    constant: Callable[[Any], Any]  # Config -> Config with constant rates (from the fields)
    rules: dict[str, Callable[[Any], Any]]  # rule name -> Config -> Config using that rule
    pbt: tuple[str, ...]  # hyperparameters PBT perturbs
    lr_metric: str  # the hp/* series that shows the rate
    # Config -> optimizer for a Config whose rates read `update_cos` (hypergradient)
    aligned: Callable[[Any], Any]


def _rule(make):
    """`Config -> Config` whose `learning_rate` is `make(Config)`."""
    return lambda c: dataclasses.replace(c, learning_rate=make(c))


def _aligned(agent):
    """The agent's default optimizer (for the Config's rates) in `optim.update_alignment`."""
    return lambda c: optim.update_alignment(agent.default_optimizer(c))


# Hypergradient descent with the schedule's defaults (beta 0.01, [init / 1000, 1000 x init]).
def _hypergradient(lr):
    return S.hypergradient(lr)


def _plateau(lr):  # the schedule's defaults (x0.5 after 10 updates without a new best)
    return S.plateau(lr)


def _bandit(lr):  # five arms around the cell's rate
    return S.bandit([lr / 10, lr / 3, lr, lr * 3, lr * 10])


_HYPERGRADIENT = _rule(lambda c: _hypergradient(c.lr_init))


def _ppo(agent) -> Setup:
    return Setup(
        preset_lr=lambda c: c.lr_init,
        fields=lambda _, lr: {"lr_init": lr},
        constant=_rule(lambda c: c.lr_init),
        rules={
            "kl_target": lambda c: c,  # the default: kl_target(lr_init), bounds lr/1000..10 lr
            "plateau": _rule(lambda c: _plateau(c.lr_init)),
            "bandit": _rule(lambda c: _bandit(c.lr_init)),
            "hypergradient": _HYPERGRADIENT,
        },
        pbt=("learning_rate",),
        lr_metric="hp/learning_rate",
        aligned=_aligned(agent),
    )


def _replay_lr(agent) -> Setup:  # dqn and impala: lr_init -> lr_final by `progress` by default
    return Setup(
        preset_lr=lambda c: c.lr_init,
        # lr_final keeps the preset's ratio, so the default rule spans the same factor anywhere.
        fields=lambda c, lr: {"lr_init": lr, "lr_final": lr * c.lr_final / c.lr_init},
        constant=_rule(lambda c: c.lr_init),
        rules={
            "progress": lambda c: c,
            "plateau": _rule(lambda c: _plateau(c.lr_init)),
            "bandit": _rule(lambda c: _bandit(c.lr_init)),
            "hypergradient": _HYPERGRADIENT,
        },
        pbt=("learning_rate",),
        lr_metric="hp/learning_rate",
        aligned=_aligned(agent),
    )


_SAC_PARTS = ("actor", "critic", "alpha")


def _sac(agent) -> Setup:
    def scaled(c, lr):  # the three rates keep the preset's ratios (critic = alpha = 10/3 actor)
        return {f"{p}_lr": lr * getattr(c, f"{p}_lr") / c.actor_lr for p in _SAC_PARTS}

    def per_part(make):  # one schedule per part, each from that part's rate
        return lambda c: dataclasses.replace(
            c, **{f"{p}_lr": make(getattr(c, f"{p}_lr")) for p in _SAC_PARTS}
        )

    def aligned(c):  # sac.default_optimizer with each part wrapped: one cosine per part
        parts = {
            p: optim.update_alignment(
                optim.injected(optax.adam, learning_rate=getattr(c, f"{p}_lr"))
            )
            for p in _SAC_PARTS
        }
        return optax.partition(parts, sac.param_labels)

    return Setup(
        preset_lr=lambda c: c.actor_lr,
        fields=scaled,
        constant=lambda c: c,
        rules={
            "plateau": per_part(_plateau),
            "bandit": per_part(_bandit),
            "hypergradient": per_part(_hypergradient),
        },
        pbt=("actor/learning_rate", "critic/learning_rate"),
        lr_metric="hp/actor/learning_rate",
        aligned=aligned,
    )


SETUPS = {"ppo": _ppo, "dqn": _replay_lr, "impala": _replay_lr, "sac": _sac}


def _reads_update_cos(cfg, agent) -> bool:
    return any(
        getattr(getattr(cfg, n), "signal", None) == optim.UPDATE_COS for n in agent.injectable
    )


def grid(preset: float, n: int) -> list[float]:
    """`n` log-spaced rates from preset / 100 to preset x 10."""
    return [float(x) for x in np.geomspace(preset / 100, preset * 10, n)]


def _values(setup: Setup, cfg, cells: list[tuple[float, int]], per_cell: int) -> dict[str, list]:
    out: dict[str, list] = {}
    for lr, seed in cells:
        for m in range(per_cell):
            for k, v in {**setup.fields(cfg, lr), "seed": seed * 1000 + m}.items():
                out.setdefault(k, []).append(v)
    return out


def run_variant(agent, cfg, setup: Setup, name: str, cells, threshold, pbt_size: int, episodes):
    """One variant over all cells: a row of figures and the solved flag per cell."""
    make_cfg = setup.constant if name in ("constant", "pbt") else setup.rules[name]
    per_cell = pbt_size if name == "pbt" else 1
    pbt = (
        PBT(setup.pbt, interval=5, perturb=(0.5, 2.0), groups=len(cells)) if name == "pbt" else None
    )

    def optimizer(c):
        c = make_cfg(c)
        return setup.aligned(c) if _reads_update_cos(c, agent) else agent.default_optimizer(c)

    t = time.perf_counter()
    res = train_population(
        agent, cfg, values=_values(setup, cfg, cells, per_cell), pbt=pbt, optimizer=optimizer
    )
    state = loops.first_replica(res.state)  # [M, ...] leaves
    final = np.asarray(state.score).reshape(len(cells), per_cell)
    out = []
    for i, (lr, _) in enumerate(cells):
        group = range(i * per_cell, (i + 1) * per_cell)
        best = i * per_cell + int(np.argmax(np.where(np.isfinite(final[i]), final[i], -np.inf)))
        ret = res.metrics["episode_return"][:, group]
        metrics = {
            "episode_return": np.nanmax(np.where(np.isnan(ret), -np.inf, ret), axis=1),
            "step": res.metrics["step"][:, best],
            "diverged": res.metrics["diverged"][:, best],
            setup.lr_metric: res.metrics[setup.lr_metric][:, best],
        }
        score = evaluate_params(
            agent, res.member_config(best), res.member_params(best), episodes, 0
        )
        cell = sweep.score_cell(metrics, score, threshold)
        lr_series = metrics[setup.lr_metric] / lr
        cell["lr_rel"] = [float(lr_series[int(f * (len(lr_series) - 1))]) for f in (0.1, 0.5, 1.0)]
        if name == "progress":  # at either end of its range: lr_init or lr_final
            ends = np.array([lr, setup.fields(cfg, lr)["lr_final"]])
            cell["at_bound"] = float(
                np.isclose(metrics[setup.lr_metric][:, None], ends, rtol=1e-5, atol=0).any(1).mean()
            )
        elif name == "bandit":
            arms = np.array([lr / 10, lr * 10])
            cell["at_bound"] = float(
                np.isclose(metrics[setup.lr_metric][:, None], arms).any(1).mean()
            )
        else:  # every rule whose state holds bounds (kl_target, plateau, hypergradient)
            opt_state = jax.tree.map(lambda x, b=best: x[b], state.members.opt_state)
            series = {k: v[:, best] for k, v in res.metrics.items() if k.startswith("hp/")}
            at = sweep.time_at_bound(series, opt_state)
            if at:  # SAC: three bounded rates; the one that sat at a bound longest
                cell["at_bound"] = max(at.values())
        out.append(cell)
    print(
        f"  {name}: {len(cells)} cells x {per_cell} member(s) in {time.perf_counter() - t:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return out


def main(
    argv: list[str] | None = None,
    extra_rules: dict[str, Callable[[Any], Any]] | None = None,
    defaults: dict[str, Any] | None = None,
    figure_suffix: str = "",
) -> None:
    """Runs the study. `extra_rules` (name -> `Config -> Config`) add variants to the agent's
    rules, `defaults` change argument defaults and `figure_suffix` the heatmap's name: what
    scripts/hypergradient_study.py uses."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="ppo", choices=sorted(SETUPS))
    ap.add_argument("--env", default="phys2d/CartPole-v1")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    ap.add_argument("--rates", type=int, default=7, help="grid points (log-spaced)")
    ap.add_argument("--pbt-size", type=int, default=4, help="members per PBT population")
    ap.add_argument("--variants", help="comma-separated (default: constant, every rule, pbt)")
    ap.add_argument("--steps", type=int, help="env steps per member (default: the preset's)")
    ap.add_argument("--episodes", type=int, default=20, help="greedy episodes per cell")
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--cache", help="folder: each variant's cells saved there and read back")
    ap.set_defaults(**(defaults or {}))
    args = ap.parse_args(argv)
    args.figure_suffix = figure_suffix

    agent = get(args.agent)
    setup = SETUPS[args.agent](agent)
    setup.rules.update(extra_rules or {})
    overrides = {} if args.steps is None else {"total_steps": args.steps}
    cfg = agent.config_for(args.env, **overrides)
    rates = grid(setup.preset_lr(cfg), args.rates)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    cells = [(lr, s) for lr in rates for s in seeds]
    names = ["constant", *setup.rules, "pbt"]
    if args.variants:
        names = args.variants.split(",")
    unknown = [n for n in names if n not in ("constant", "pbt", *setup.rules)]
    if unknown:
        ap.error(
            f"unknown variants {unknown} for {args.agent}; known: constant, "
            f"{', '.join(setup.rules)}, pbt"
        )
    threshold = sweep.solved_threshold(args.env)
    results, walls = {}, {}
    for n in names:
        results[n], walls[n] = _cached(
            args,
            cfg,
            n,
            lambda n=n: _timed(
                run_variant, agent, cfg, setup, n, cells, threshold, args.pbt_size, args.episodes
            ),
        )
    _report(args, cfg, rates, cells, results, threshold, walls)


def _timed(fn, *a):
    t = time.perf_counter()
    return fn(*a), time.perf_counter() - t


def _cached(args, cfg, name, run):
    """`run()` -> (cells, seconds), or both read back from `--cache` (the same grid's variant,
    saved by an earlier call), so that variants can run as separate processes and one last
    call prints the table of them all."""
    if not args.cache:
        return run()
    key = (
        f"{args.agent}_{args.env.replace('/', '_')}_{cfg.total_steps}_{args.rates}r_"
        f"{args.first_seed}+{args.seeds}s_{args.pbt_size}p_{args.episodes}e_{name}.json"
    )
    path = os.path.join(args.cache, key)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        print(f"  {name}: read back from {path}", file=sys.stderr)
        return saved["cells"], saved["seconds"]
    cells, seconds = run()
    os.makedirs(args.cache, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"cells": cells, "seconds": seconds}, f, default=lambda x: x.item())
    return cells, seconds


def _report(args, cfg, rates, cells, results, threshold, walls) -> None:
    date = datetime.date.today().isoformat()
    print(
        f"\n{args.agent} on {args.env}, {cfg.total_steps:,} env steps per member, rates "
        f"{rates[0]:.2g}..{rates[-1]:.2g} ({len(rates)} log-spaced) x {args.seeds} seeds "
        f"({args.first_seed}..{args.first_seed + args.seeds - 1}); PBT: {args.pbt_size} members "
        f"per cell. `python scripts/{os.path.basename(sys.argv[0])} {' '.join(sys.argv[1:])}`, "
        f"{date}, "
        f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__}, "
        f"{sum(walls.values()) / 60:.1f} min ("
        + ", ".join(f"{n} {w / 60:.1f}" for n, w in walls.items())
        + f"). Solved: greedy return >= {threshold} ({args.episodes} episodes).\n"
    )
    head = ["variant", "solved", "median steps to solve", "time at bound (median)"]
    head += ["rate / initial at 10%, 50%, 100% (median)"] + [f"{lr:.1e}" for lr in rates]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, out in results.items():
        solved = [c["solved"] for c in out]
        steps = [c["steps_to_solve"] for c in out if np.isfinite(c["steps_to_solve"])]
        bound = [c["at_bound"] for c in out if "at_bound" in c]
        rel = np.median(np.array([c["lr_rel"] for c in out]), axis=0)
        per_lr = [
            np.mean([c["solved"] for c, (lr_, _) in zip(out, cells, strict=True) if lr_ == lr])
            for lr in rates
        ]
        row = [
            name,
            f"{np.mean(solved):.0%} ({sum(solved)}/{len(solved)})",
            f"{statistics.median(steps):,.0f}" if steps else "—",
            f"{statistics.median(bound):.0%}" if bound else "—",
            ", ".join(f"{x:.2g}" for x in rel),
        ] + [f"{x:.0%}" for x in per_lr]
        print("| " + " | ".join(row) + " |")
    _heatmap(args, rates, cells, results)


def _heatmap(args, rates, cells, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    grid_ = np.array(
        [
            [
                np.mean([c["solved"] for c, (lr_, _) in zip(out, cells, strict=True) if lr_ == lr])
                for lr in rates
            ]
            for out in results.values()
        ]
    )
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 + 0.9 * len(rates)), 1.0 + 0.5 * len(names)))
    ax.imshow(grid_, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(grid_):
        ax.text(j, i, f"{v:.0%}", ha="center", va="center", color="w" if v < 0.5 else "k")
    ax.set_xticks(range(len(rates)), [f"{lr:.0e}" for lr in rates])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("initial learning rate")
    ax.set_title(f"{args.agent} {args.env}: solved fraction ({args.seeds} seeds)")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(
        args.out, f"robustness_{args.agent}_{args.env.replace('/', '_')}{args.figure_suffix}.png"
    )
    fig.savefig(path, dpi=100)
    print(f"\nheatmap: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
