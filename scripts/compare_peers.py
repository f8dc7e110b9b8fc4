"""Side by side on this machine, in one run: stable-baselines3 PPO vs inject-rl PPO on CartPole.

SB3 uses rl-baselines3-zoo's tuned CartPole-v1 hyperparameters (8 envs, n_steps 32, batch 256,
20 epochs, gamma 0.98, gae_lambda 0.8, lr and clip linearly decayed from 1e-3 and 0.2). Ours is
`agents.ppo.Config` in `ppo.RL_ZOO_LAYOUT` (the same layout; a `kl_target` learning rate instead
of the linear decay) on `CartPole-v1` host envs (sebulba loop) and on `phys2d/CartPole-v1` (anakin).
For each: wall seconds to train 1e5 env steps (compile included and also shown apart), greedy
evaluation return over 20 episodes, and the ratio of SB3's wall time to ours.

Needs the optional peers extra: pip install -e ".[peers]" (torch==2.13.0, stable-baselines3).

    python scripts/compare_peers.py [--steps 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

from _peers import rl_zoo_ppo


def sb3_ppo(steps: int, seed: int) -> tuple[float, float, float]:
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy  # imports before the timer

    t = time.perf_counter()
    model = rl_zoo_ppo(seed)
    setup_s = time.perf_counter() - t
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    learn_s = time.perf_counter() - t
    mean, _ = evaluate_policy(
        model, gym.make("CartPole-v1"), n_eval_episodes=20, deterministic=True
    )
    return setup_s + learn_s, learn_s, float(mean)


def ours(env_id: str, steps: int, seed: int) -> tuple[float, float, float, int]:
    from inject_rl.agents import ppo

    t = time.perf_counter()
    res = ppo.train(ppo.Config(env_id=env_id, total_steps=steps, seed=seed, **ppo.RL_ZOO_LAYOUT))
    wall = time.perf_counter() - t
    return wall, res.compile_s, ppo.evaluate(res), int(res.metrics["step"][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    print(
        f"_{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores; "
        f"`python scripts/compare_peers.py --steps {args.steps} --seed {args.seed}`_\n"
    )
    print(
        "| run | env steps | wall s (to train) | of which compile s | eval return | "
        "SB3 wall / ours |"
    )
    print("|---|---|---|---|---|---|")
    try:
        sb3_wall, sb3_learn, sb3_eval = sb3_ppo(args.steps, args.seed)
    except ImportError as err:
        print(
            f"| stable-baselines3 PPO | — | not installed ({err.name}); "
            "pip install -e '.[peers]' | | | |"
        )
        sb3_wall = None
    else:
        print(
            f"| stable-baselines3 PPO (CartPole-v1) | {args.steps} | {sb3_wall:.1f} | "
            f"(learn() {sb3_learn:.1f}) | {sb3_eval:.0f} | 1.00 |"
        )
    for env_id, label in (
        ("CartPole-v1", "inject-rl PPO, host envs (sebulba)"),
        ("phys2d/CartPole-v1", "inject-rl PPO, on device (anakin)"),
    ):
        wall, compile_s, ev, steps = ours(env_id, args.steps, args.seed)
        ratio = f"{sb3_wall / wall:.1f}x" if sb3_wall else "—"
        print(
            f"| {label} ({env_id}) | {steps} | {wall:.1f} | {compile_s:.1f} | {ev:.0f} | {ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
