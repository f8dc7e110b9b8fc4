"""Adam's betas driven by training signals vs fixed betas, PPO on phys2d/CartPole-v1, many seeds.

PPO in `ppo.RL_ZOO_LAYOUT`. Variants (learning rate: the default `kl_target` in all of them):
  fixed            b1=0.9, b2=0.999 (Adam's defaults)
  fixed_b1_0.99    b1=0.99 (a common "smoother" choice, fixed)
  b1_plateau_up    b1 = plateau(0.9, factor=1.05, max_value=0.99) on the return: more momentum
                   once the return stops improving
  b1_kl_spike_down b1 = spike_guard(0.9, signal="kl", ratio=2, backoff=0.5, recovery=20): less
                   momentum right after a KL spike (the last updates overshot), then back to 0.9
  b2_progress      b2 = progress(0.99, 0.999, low=0, high=500): short second-moment memory early,
                   long once the return is high

    python scripts/betas_study.py [--seeds 10] [--lr 1e-3]

Prints a markdown table: solved fraction (final greedy return >= 475 on 20 episodes), median
steps-to-solve (first training-return >= 475), mean final greedy return, mean training return
over the run (area under the learning curve / steps), and for a scheduled beta its time at a
bound: the share of iterations (all seeds) whose value sat at the lowest or highest value its
schedule can reach (for `spike_guard`, 0.9 x `min_scale` and 0.9), within 1e-5 relative. A
rule that sits at a bound for most updates is a constant in disguise.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import time

import jax
import numpy as np
from _study import run_group, summary_row

from inject_rl import schedules as S
from inject_rl.agents import ppo
from inject_rl.optim._ranges import _reach


def variants() -> dict[str, dict]:
    return {
        "fixed": {},
        "fixed_b1_0.99": {"b1": 0.99},
        "b1_plateau_up": {"b1": S.plateau(0.9, factor=1.05, max_value=0.99, patience=10)},
        "b1_kl_spike_down": {
            "b1": S.spike_guard(0.9, signal="kl", ratio=2.0, backoff=0.5, recovery=20)
        },
        "b2_progress": {"b2": S.progress(0.99, 0.999, low=0.0, high=500.0)},
    }


def at_bound(hps: dict, metrics: dict) -> str:
    """`b1 at 0.0009: 97%, at 0.9: 1%` for each scheduled beta, `-` when none is."""
    parts = []
    for name, value in hps.items():
        span = _reach(value) if callable(value) else None
        if span is None:
            continue
        series = np.asarray(metrics[f"hp/{name}"], np.float64).ravel()
        shares = [
            f"at {bound:g}: {np.mean(np.isclose(series, bound, rtol=1e-5, atol=0)):.0%}"
            for bound in span
        ]
        parts.append(f"{name} " + ", ".join(shares))
    return "; ".join(parts) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    args = parser.parse_args()
    if args.seeds < 1 or not args.lr > 0:
        parser.error(f"--seeds must be >= 1 and --lr > 0, got {args.seeds=} {args.lr=}")
    t = time.perf_counter()
    cfg = ppo.Config(lr_init=args.lr, **ppo.RL_ZOO_LAYOUT)  # the layout of the published table
    print(
        f"_{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, jax "
        f"{jax.__version__}; `python scripts/betas_study.py --seeds {args.seeds} --lr {args.lr}`_"
        f"\n\n| betas | solved | median steps-to-solve | mean final return | mean training "
        "return | time at a bound |\n|---|---|---|---|---|---|"
    )
    for name, hps in variants().items():
        opt = ppo.default_optimizer(dataclasses.replace(cfg), **hps)
        evals, first, metrics = run_group(ppo, cfg, [opt], args.seeds, name)
        frac, med = summary_row(evals, first)
        auc = np.nanmean(metrics["episode_return"])
        print(
            f"| {name} | {frac} | {med} | {evals.mean():.0f} | {auc:.0f} | "
            f"{at_bound(hps, metrics)} |",
            flush=True,
        )
    print(f"\n_total {time.perf_counter() - t:.0f} s_")


if __name__ == "__main__":
    main()
