"""DQN on host CartPole-v1 (sebulba loop), scored by the final policy (issue 13).

Trains `dqn.config_for("CartPole-v1")` (the preset: 3-step returns, LayerNorm, learning rate
1e-3 -> 1e-5 over the run) for 1e5 env steps on each seed and scores the params the run ends
with: the mean greedy return of 20 episodes on fresh CartPole-v1 envs (seeded 1000 + seed, not
the training seed). No best-params keeping: the host loop has no in-graph evaluation, so no
evaluation env steps are spent beyond the `total_steps` training steps.

Prints one row per seed (final greedy return, the mean training return of the last 10% of
the run, env steps, wall seconds with compile and evaluation, compile seconds) and the
number of seeds at or above 475.

`--sb3` adds stable-baselines3's DQN beside it on the same seeds and budget, scored the same way
(its final policy, greedy, 20 episodes on envs seeded 1000 + seed): rl-baselines3-zoo's tuned
CartPole-v1 hyperparameters (hyperparams/dqn.yml: 256x256 MLP, lr 2.3e-3, batch 64, buffer 1e5,
learning starts 1,000, gamma 0.99, target update every 10 steps, 128 gradient steps every 256 env
steps, epsilon 1 -> 0.04 over the first 16% of the run; one env), tuned there for 5e4 steps.
SB3's DQN keeps no best params either; its training column is the mean of its last 100
episodes (SB3's episode buffer) rather than of the last 10% of the run. Needs the `peers` extra.

    python scripts/dqn_host.py [--seeds 0 1 2] [--steps 100000] [--env CartPole-v1] [--sb3]
        [--torch-threads N]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _peers import caption, sb3_greedy_return, sb3_ready, torch_threads

from inject_rl.agents import dqn

SOLVED = 475.0  # CartPole-v1's reward threshold


def run(env_id: str, seed: int, steps: int, episodes: int) -> dict[str, Any]:
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


# rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1 (n_timesteps 5e4)
RL_ZOO_DQN = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
)


def run_sb3(env_id: str, seed: int, steps: int, episodes: int) -> dict[str, Any]:
    """SB3's DQN with rl-zoo's CartPole-v1 settings; its final policy scored as ours."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.monitor import Monitor

    t = time.perf_counter()
    model = DQN(
        "MlpPolicy",
        Monitor(gym.make(env_id)),
        policy_kwargs=dict(net_arch=[256, 256]),
        seed=seed,
        device="cpu",
        verbose=0,
        **RL_ZOO_DQN,
    )
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t
    rewards = [e["r"] for e in model.ep_info_buffer]  # the last 100 episodes
    return dict(
        final=sb3_greedy_return(model, env_id, seed, episodes),
        train_tail=float(np.mean(rewards)) if rewards else float("nan"),
        steps=int(model.num_timesteps),
        wall_s=wall,
        compile_s=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--sb3", action="store_true", help="stable-baselines3's DQN beside it")
    parser.add_argument("--torch-threads", type=int, help="SB3's torch threads")
    args = parser.parse_args()
    if args.steps < 1 or args.episodes < 1:
        parser.error(f"--steps and --episodes must be >= 1, got {args.steps}, {args.episodes}")
    sides = {"inject-rl": run}
    if args.sb3:
        missing = sb3_ready()
        if missing:
            raise SystemExit(missing)
        sides["stable-baselines3"] = run_sb3
    note = torch_threads(args.torch_threads) if args.sb3 else ""
    print(caption(("stable-baselines3", "torch") if args.sb3 else (), note) + "\n")
    print("| run | seed | final greedy | training, last 10% | env steps | wall s | compile s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    finals: dict[str, list[float]] = {name: [] for name in sides}
    for seed in args.seeds:
        for name, train in sides.items():
            r = train(args.env, seed, args.steps, args.episodes)
            finals[name].append(r["final"])
            compile_s = "—" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
            print(
                f"| {name} | {seed} | {r['final']:.1f} | {r['train_tail']:.1f} | {r['steps']} | "
                f"{r['wall_s']:.1f} | {compile_s} |",
                flush=True,
            )
    for name, values in finals.items():
        solved = sum(f >= SOLVED for f in values)
        print(
            f"\n{name}: final policy >= {SOLVED:g}: {solved} of {len(values)} seeds "
            f"(mean {np.mean(values):.1f}, min {min(values):.1f}; {args.episodes} greedy "
            "episodes each; no evaluation steps during training)"
        )


if __name__ == "__main__":
    main()
