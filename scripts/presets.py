"""An agent's presets, trained and scored: `config_for(env_id)` on seeds 0-2, greedy return.

    python scripts/presets.py [--agent ppo] [--envs Pendulum-v1,MountainCarContinuous-v0]
        [--seeds 3] [--episodes 20]

Prints one Markdown row per env: the preset's env steps, each seed's greedy return of the final
params, and the wall time.
"""

from __future__ import annotations

import argparse
import time

from inject_rl.agents import get


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="ppo")
    ap.add_argument("--envs", default="Pendulum-v1,MountainCarContinuous-v0")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args()
    agent = get(args.agent)
    print(f"| {args.agent} preset | env steps | greedy return per seed | wall s |")
    print("|---|---|---|---|")
    for env_id in args.envs.split(","):
        returns, t = [], time.perf_counter()
        for seed in range(args.seeds):
            cfg = agent.config_for(env_id, seed=seed)
            res = agent.train(cfg)
            returns.append(agent.evaluate(res, episodes=args.episodes))
        shown = " / ".join(f"{r:.1f}" for r in returns)
        print(f"| {env_id} | {cfg.total_steps:,} | {shown} | {time.perf_counter() - t:.0f} |")


if __name__ == "__main__":
    main()
