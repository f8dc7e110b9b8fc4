"""PBT rescuing a bad start: every member of a PPO population at one too-small learning rate.

For each of 5 base seeds, a population of `--size` members on phys2d/CartPole-v1, every member
starting at `--lr` (a constant rate; with `--kl`, PPO's default kl_target rule from that rate),
`--pbt learning_rate` every `--interval` iterations (x0.5 or x2), 1e5 env steps per member. Prints
the best member's greedy return (20 episodes) and its rate's quartiles over training, then the
same rate as a constant without PBT on seeds 0-2.

    python scripts/pbt_rescue.py [--size 8] [--lr 3e-5] [--interval 5] [--kl]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from inject_rl.agents import PBT, get, train_population
from inject_rl.agents._train import evaluate_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--kl", action="store_true", help="kl_target from --lr instead of a constant")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    ppo = get("ppo")
    rate = {"lr_init": args.lr} if args.kl else {"learning_rate": args.lr}
    solved = 0
    for seed in range(args.seeds):
        cfg = ppo.config_for("phys2d/CartPole-v1", total_steps=100_000, seed=seed * 100, **rate)
        t = time.perf_counter()
        pbt = PBT(("learning_rate",), interval=args.interval, perturb=(0.5, 2.0))
        r = train_population(ppo, cfg, size=args.size, pbt=pbt)
        ret = evaluate_params(ppo, r.member_config(r.best), r.params, 20, 0)
        solved += ret >= 475
        lr = r.metrics["hp/learning_rate"][:, r.best]
        print(
            f"seed {seed}: best member {r.best}, greedy {ret:.1f}, its rate q25/50/75 "
            f"{np.quantile(lr, [0.25, 0.5, 0.75]).round(7).tolist()}, "
            f"{time.perf_counter() - t:.0f} s",
            flush=True,
        )
    print(f"PBT ({args.size} members): {solved} of {args.seeds} seeds >= 475")
    for seed in range(3):
        res = ppo.train(
            ppo.config_for("phys2d/CartPole-v1", total_steps=100_000, seed=seed, **rate)
        )
        print(f"without PBT, seed {seed}: greedy {ppo.evaluate(res):.1f}", flush=True)


if __name__ == "__main__":
    main()
