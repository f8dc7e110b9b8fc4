"""PBT rescuing a bad start: every member of a PPO population at one too-small learning rate.

For each of `--seeds` base seeds, a population of `--size` members on phys2d/CartPole-v1, every
member starting at `--lr`, `PBT(("learning_rate",))` every `--interval` iterations (x0.5 or x2),
`--steps` (1e5) env steps per member; all populations side by side in one program
(`PBT(groups=...)`).
`--rule` picks how each member's rate moves between PBT steps:

- `constant` (default): it does not; PBT alone moves it;
- `kl_target`: PPO's default rule from `--lr` (also `--kl`);
- `hypergradient`: hypergradient descent (Baydin et al. 2018; `schedules.hypergradient(--lr,
  beta=--beta)` with its default bounds, the optimizer in `optim.update_alignment`); PBT scales
  the schedule's current value, so it perturbs the rate the rule goes on from.

Prints each population's best member's greedy return (20 episodes) and its rate's quartiles over
training, then the same rule from `--lr` without PBT (one member per base seed, same seeds).

    python scripts/pbt_rescue.py [--size 8] [--lr 3e-5] [--interval 5] [--seeds 5]
        [--rule constant|kl_target|hypergradient] [--beta 0.01]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import jax
import numpy as np

from inject_rl import loops, optim
from inject_rl import schedules as S
from inject_rl.agents import PBT, get, train_population
from inject_rl.agents._train import evaluate_params

ENV = "phys2d/CartPole-v1"
SOLVED = 475.0


def _optimizer(ppo, rule: str, beta: float):
    """`Config -> optimizer` for the rule, each member's rate starting at its `lr_init`."""
    if rule == "kl_target":
        return ppo.default_optimizer  # kl_target(lr_init)

    def make(c):
        if rule == "constant":
            return ppo.default_optimizer(dataclasses.replace(c, learning_rate=c.lr_init))
        lr = S.hypergradient(c.lr_init, beta=beta)
        return optim.update_alignment(
            ppo.default_optimizer(dataclasses.replace(c, learning_rate=lr))
        )

    return make


def _run(ppo, cfg, args, seeds, size, pbt):
    """Trains `len(seeds)` groups of `size` members; per group (greedy return, rate series)."""
    values = {"seed": [s * 100 + m for s in seeds for m in range(size)]}
    t = time.perf_counter()
    res = train_population(
        ppo, cfg, values=values, pbt=pbt, optimizer=_optimizer(ppo, args.rule, args.beta)
    )
    score = np.asarray(loops.first_replica(res.state).score).reshape(len(seeds), size)
    out = []
    for g in range(len(seeds)):
        best = g * size + int(np.argmax(np.where(np.isfinite(score[g]), score[g], -np.inf)))
        ret = evaluate_params(ppo, res.member_config(best), res.member_params(best), 20, 0)
        out.append((best - g * size, ret, res.metrics["hp/learning_rate"][:, best]))
    print(f"  ({len(seeds) * size} members in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument(
        "--rule", default="constant", choices=("constant", "kl_target", "hypergradient")
    )
    ap.add_argument("--kl", action="store_true", help="the same as --rule kl_target")
    ap.add_argument("--beta", type=float, default=0.01, help="hypergradient's beta")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100_000, help="env steps per member")
    args = ap.parse_args()
    if args.kl:
        args.rule = "kl_target"
    ppo = get("ppo")
    cfg = ppo.config_for(ENV, total_steps=args.steps, lr_init=args.lr)
    seeds = range(args.seeds)
    print(f"{' '.join(sys.argv)}; jax {jax.__version__}")
    pbt = PBT(("learning_rate",), interval=args.interval, perturb=(0.5, 2.0), groups=args.seeds)
    groups = _run(ppo, cfg, args, seeds, args.size, pbt)
    for seed, (best, ret, lr) in zip(seeds, groups, strict=True):
        print(
            f"seed {seed}: best member {best}, greedy {ret:.1f}, its rate q25/50/75 "
            f"{np.quantile(lr, [0.25, 0.5, 0.75]).round(7).tolist()}, final {lr[-1]:.2g}"
        )
    solved = sum(ret >= SOLVED for _, ret, _ in groups)
    print(f"PBT ({args.size} members, {args.rule}): {solved} of {args.seeds} seeds >= {SOLVED}")
    alone = _run(ppo, cfg, args, seeds, 1, None)
    for seed, (_, ret, lr) in zip(seeds, alone, strict=True):
        print(f"without PBT, seed {seed}: greedy {ret:.1f}, final rate {lr[-1]:.2g}")
    solved = sum(ret >= SOLVED for _, ret, _ in alone)
    print(f"without PBT ({args.rule}): {solved} of {args.seeds} seeds >= {SOLVED}")


if __name__ == "__main__":
    main()
