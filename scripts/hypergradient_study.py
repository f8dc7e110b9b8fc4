"""Does hypergradient descent pay on PPO? Constant rates against the multiplicative rule.

Issue 14 item 4: a signal-driven rule from the literature, tried honestly and kept only if it
pays. Hypergradient descent (Baydin et al. 2018, multiplicative form): the learning rate is
multiplied by `1 + beta * cos` after every update, `cos` the cosine between the current descent
direction and the previous update (`inject_rl.optim.update_alignment` passes it as
`update_cos`; `inject_rl.schedules.hypergradient` is the rule).

Fixed before any result was seen:
- grid: 7 initial rates log-spaced from 1e-5 to 1e-2 (PPO's preset 1e-3 / 100 .. x 10) x 5
  seeds, 1e5 env steps per cell, the PPO preset for phys2d/CartPole-v1 otherwise (Adam, eps 1e-5,
  clip 0.5; 10 epochs of one minibatch: about 3,900 updates per run);
- variants: `constant` (the rate never moves) and `hypergradient` with beta 0.01 (the
  default: at a mean cosine of 0.3, about a decade per 770 updates, i.e. the default range can be
  crossed within the budget) and beta 0.03 (three times faster), both with the default bounds
  [init / 1000, 10 x init] and `every=1` (one step per update, as in the paper);
- figures: solved (greedy return of the final params >= 475 over 20 episodes), median
  steps-to-solve (first env step whose training return reached 475), time at a bound (fraction of
  logged iterations whose rate equals its min or max: `inject_rl.sweep.time_at_bound`), and the
  rate relative to its initial value at 10%, 50% and 100% of training.
- pays if: a hypergradient variant solves more cells than `constant` without sitting at a
  bound for most of its updates.

    python scripts/hypergradient_study.py [--seeds 5] [--rates 7] [--steps 100000]
        [--betas 0.01,0.03]

Every (rate, seed) cell of a variant is a member of one vmapped program
(`inject_rl.agents.train_population`). Prints a Markdown table with the command, date, machine
and wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time

import jax
import numpy as np

from inject_rl import loops, sweep
from inject_rl import schedules as S
from inject_rl.agents import get, train_population
from inject_rl.agents._train import evaluate_params
from inject_rl.optim import update_alignment

ENV = "phys2d/CartPole-v1"


def _with(agent, make_lr, wrap=False):
    """`cfg -> optimizer`: PPO's default optimizer with the learning rate `make_lr(cfg)`."""

    def optimizer(c):
        opt = agent.default_optimizer(dataclasses.replace(c, learning_rate=make_lr(c)))
        return update_alignment(opt) if wrap else opt

    return optimizer


def variants(agent, betas: list[float]) -> dict:
    """Name -> (`cfg -> optimizer`, whether its rate has bounds). The pre-registered ones are
    `constant` and `hypergradient(beta=...)`; the others are follow-up controls, added after the
    first table was seen: `kl_target` (PPO's default rule, for reference),
    `hypergradient_wide` (absolute bounds [1e-7, 1e-1] instead of [init / 1000, 10 x init]: where
    does the rule take the rate when its cap does not stop it?) and `hypergradient_x1000`
    (default floor, cap 1000 x init as `plateau`'s default cap: a relative default that would
    not stop it on this grid)."""
    out = {"constant": (_with(agent, lambda c: c.lr_init), False)}
    for b in betas:
        out[f"hypergradient(beta={b})"] = (
            _with(agent, lambda c, b=b: S.hypergradient(c.lr_init, beta=b), wrap=True),
            True,
        )
    out["kl_target"] = (agent.default_optimizer, True)  # kl_target(lr_init, target=0.03)
    for b in betas:
        out[f"hypergradient_wide(beta={b})"] = (
            _with(
                agent,
                lambda c, b=b: S.hypergradient(c.lr_init, beta=b, min_value=1e-7, max_value=0.1),
                wrap=True,
            ),
            True,
        )
    for b in betas:
        out[f"hypergradient_x1000(beta={b})"] = (
            _with(
                agent,
                lambda c, b=b: S.hypergradient(c.lr_init, beta=b, max_value=c.lr_init * 1000),
                wrap=True,
            ),
            True,
        )
    return out


def run_variant(agent, cfg, variant, cells, threshold, episodes):
    """Trains every cell of one variant in one program; a figure dict per cell."""
    optimizer, bounded = variant
    values = {"lr_init": [lr for lr, _ in cells], "seed": [s for _, s in cells]}
    res = train_population(agent, cfg, values=values, optimizer=optimizer)
    state = loops.first_replica(res.state)  # [M, ...] leaves
    out = []
    for i, (lr, _) in enumerate(cells):
        metrics = {k: res.metrics[k][:, i] for k in ("episode_return", "step", "diverged")}
        metrics["hp/learning_rate"] = res.metrics["hp/learning_rate"][:, i]
        score = evaluate_params(agent, res.member_config(i), res.member_params(i), episodes, 0)
        cell = sweep.score_cell(metrics, score, threshold)
        rates = np.asarray(metrics["hp/learning_rate"], np.float64)
        cell["lr_rel"] = [float(rates[int(f * (len(rates) - 1))] / lr) for f in (0.1, 0.5, 1.0)]
        cell["lr_final"] = float(rates[-1])
        if bounded:
            opt_state = jax.tree.map(lambda x, i=i: x[i], state.members.opt_state)
            at = sweep.time_at_bound(metrics, opt_state)
            cell["at_bound"] = at.get("learning_rate", float("nan"))
        out.append(cell)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    ap.add_argument("--rates", type=int, default=7, help="grid points, log-spaced 1e-5..1e-2")
    ap.add_argument("--steps", type=int, default=100_000, help="env steps per cell")
    ap.add_argument("--betas", default="0.01,0.03", help="hypergradient betas (comma-separated)")
    ap.add_argument("--episodes", type=int, default=20, help="greedy episodes per cell")
    ap.add_argument(
        "--variants",
        help="comma-separated names (default: the pre-registered constant and hypergradient rows); "
        "also kl_target, hypergradient_wide(beta=B)",
    )
    args = ap.parse_args()

    agent = get("ppo")
    cfg = agent.config_for(ENV, total_steps=args.steps)
    rates = [float(x) for x in np.geomspace(1e-5, 1e-2, args.rates)]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    cells = [(lr, s) for lr in rates for s in seeds]
    betas = [float(b) for b in args.betas.split(",")]
    every = variants(agent, betas)
    names = ["constant"] + [f"hypergradient(beta={b})" for b in betas]
    if args.variants:
        names = _split(args.variants)
    unknown = [n for n in names if n not in every]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(every)}")
    threshold = sweep.solved_threshold(ENV)
    t0 = time.perf_counter()
    results = {}
    for name in names:
        t = time.perf_counter()
        results[name] = run_variant(agent, cfg, every[name], cells, threshold, args.episodes)
        print(f"  {name}: {len(cells)} cells in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    _report(args, cfg, rates, cells, results, threshold, time.perf_counter() - t0)


def _split(text: str) -> list[str]:
    """Splits `a,b(beta=0.1),c` at the commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def _report(args, cfg, rates, cells, results, threshold, wall) -> None:
    print(
        f"\nppo on {ENV}, {cfg.total_steps:,} env steps per cell, initial rates "
        f"{rates[0]:.2g}..{rates[-1]:.2g} ({len(rates)} log-spaced) x {args.seeds} seeds. "
        f"`python scripts/hypergradient_study.py --seeds {args.seeds} "
        f"--first-seed {args.first_seed} --rates {args.rates} "
        f"--steps {args.steps} --betas {args.betas}"
        + (f" --variants '{args.variants}'" if args.variants else "")
        + f"`, {datetime.date.today().isoformat()}, "
        f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__}, "
        f"{wall / 60:.1f} min. Solved: greedy return >= {threshold} ({args.episodes} episodes).\n"
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
        per_lr = []
        for lr in rates:
            mine = [c for c, (lr_, _) in zip(out, cells, strict=True) if lr_ == lr]
            final = statistics.median(c["lr_final"] for c in mine)
            at = [c["at_bound"] for c in mine if "at_bound" in c]
            text = f"{sum(c['solved'] for c in mine)}/{len(mine)}"
            if at:  # where the rate went, and how long it sat at a bound
                text += f" (lr {final:.1e}, bound {statistics.median(at):.0%})"
            per_lr.append(text)
        row = [
            name,
            f"{np.mean(solved):.0%} ({sum(solved)}/{len(solved)})",
            f"{statistics.median(steps):,.0f}" if steps else "—",
            f"{statistics.median(bound):.0%}" if bound else "—",
            ", ".join(f"{x:.2g}" for x in rel),
        ] + per_lr
        print("| " + " | ".join(row) + " |")
    print(
        "\nPer-rate cells: solved/seeds; for hypergradient, the median final rate and the median "
        "time at a bound."
    )


if __name__ == "__main__":
    main()
