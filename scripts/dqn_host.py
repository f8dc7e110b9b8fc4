"""DQN on host CartPole-v1 (sebulba loop), scored by the final policy (issue 13).

Trains `dqn.config_for("CartPole-v1")` (the preset: 3-step returns, LayerNorm, learning rate
1e-3 -> 1e-5 over the run) for 1e5 env steps on each seed and scores the params the run ends
with: the mean greedy return of 20 episodes on fresh CartPole-v1 envs (seeded 1000 + seed, not
the training seed). No best-params keeping: the host loop has no in-graph evaluation, so no
evaluation env steps are spent beyond the `total_steps` training steps.

Prints one row per seed (final greedy return, the mean training return of the last 10% of
the run, env steps, wall seconds with compile and evaluation, compile seconds) and the
number of seeds at or above 475.

    python scripts/dqn_host.py [--seeds 0 1 2] [--steps 100000] [--env CartPole-v1]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import numpy as np

from inject_rl.agents import dqn

SOLVED = 475.0  # CartPole-v1's reward threshold


def run(env_id: str, seed: int, steps: int, episodes: int) -> dict[str, float]:
    """Trains one seed and scores its final params."""
    t = time.perf_counter()
    res = dqn.train(dqn.config_for(env_id, seed=seed, total_steps=steps))
    final = dqn.evaluate(res, episodes=episodes, seed=1000 + seed)
    wall = time.perf_counter() - t
    step, ret = res.metrics["step"], res.metrics["episode_return"]
    late = ret[step > 0.9 * step[-1]]
    return dict(
        final=final,
        train_tail=float(np.nanmean(late)) if np.isfinite(late).any() else float("nan"),
        steps=int(step[-1]),
        wall_s=wall,
        compile_s=res.compile_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--env", default="CartPole-v1")
    args = parser.parse_args()
    if args.steps < 1 or args.episodes < 1:
        parser.error(f"--steps and --episodes must be >= 1, got {args.steps}, {args.episodes}")
    print(
        f"_{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores; "
        f"`python scripts/dqn_host.py --seeds {' '.join(map(str, args.seeds))} "
        f"--steps {args.steps} --env {args.env}`_\n"
    )
    print("| seed | final greedy | training, last 10% | env steps | wall s | compile s |")
    print("|---:|---:|---:|---:|---:|---:|")
    finals = []
    for seed in args.seeds:
        r = run(args.env, seed, args.steps, args.episodes)
        finals.append(r["final"])
        print(
            f"| {seed} | {r['final']:.1f} | {r['train_tail']:.1f} | {r['steps']} | "
            f"{r['wall_s']:.1f} | {r['compile_s']:.1f} |",
            flush=True,
        )
    solved = sum(f >= SOLVED for f in finals)
    print(
        f"\nfinal policy >= {SOLVED:g}: {solved} of {len(finals)} seeds "
        f"(mean {np.mean(finals):.1f}, min {min(finals):.1f}; {args.episodes} greedy episodes "
        "each; no evaluation steps during training)"
    )


if __name__ == "__main__":
    main()
