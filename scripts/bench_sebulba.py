"""Throughput of PPO on CartPole-v1 host envs (sebulba) against anakin and stable-baselines3.

Trains the same PPO configuration (`ppo.RL_ZOO_LAYOUT`: 8 envs x 32 steps, 20 epochs of one
minibatch, two 64-unit layers, KL-adaptive learning rate) for the same budget:

* anakin: `phys2d/CartPole-v1`, envs stepped in-graph (the same dynamics as CartPole-v1);
* sebulba: `CartPole-v1` gymnasium host envs on an actor thread, staleness 0 (synchronous,
  on-policy) and 1 (acting overlaps learning);
* sb3: stable-baselines3's PPO on `CartPole-v1` with the same sizes and constants (its learning
  rate is the constant `lr_init`: SB3 has no KL-adaptive schedule), if `stable_baselines3` is
  importable (`pip install -e ".[peers]"`); the row is skipped with a note otherwise.

Prints env-steps/s during training (compile excluded), compile seconds and the greedy return
over 20 episodes; the median of `--reps` runs.

    python scripts/bench_sebulba.py [--steps 100000] [--reps 3] [--no-sb3]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax

from inject_rl.agents import ppo


def _ppo_row(cfg: ppo.Config) -> tuple[float, float, float, float]:
    res = ppo.train(cfg)
    steps = int(res.metrics["step"][-1])
    return steps / res.train_s, res.train_s, res.compile_s, ppo.evaluate(res, episodes=20)


def _sb3_row(cfg: ppo.Config) -> tuple[float, float, float, float]:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(os.cpu_count() or 1)
    env = make_vec_env("CartPole-v1", n_envs=cfg.num_envs, seed=cfg.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=cfg.rollout_len,
        batch_size=cfg.steps_per_iteration // cfg.num_minibatches,
        n_epochs=cfg.epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        learning_rate=cfg.lr_init,
        clip_range=0.2,
        ent_coef=0.0,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        policy_kwargs={"net_arch": list(cfg.hidden), "activation_fn": torch.nn.Tanh},
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    budget = cfg.num_iterations * cfg.steps_per_iteration
    t = time.perf_counter()
    model.learn(total_timesteps=budget)
    train_s = time.perf_counter() - t
    ret, _ = evaluate_policy(
        model, make_vec_env("CartPole-v1", n_envs=1, seed=0), n_eval_episodes=20, deterministic=True
    )
    env.close()
    return model.num_timesteps / train_s, train_s, 0.0, float(ret)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-sb3", action="store_true", help="skip the stable-baselines3 row")
    args = parser.parse_args()
    if args.steps < 1 or args.reps < 1:
        parser.error(f"--steps and --reps must be >= 1, got {args.steps=} {args.reps=}")

    rows: dict[str, Callable[[], tuple[float, float, float, float]]] = {
        "anakin phys2d/CartPole-v1": lambda: _ppo_row(
            ppo.Config(total_steps=args.steps, **ppo.RL_ZOO_LAYOUT)
        ),
        "sebulba CartPole-v1 stale0": lambda: _ppo_row(
            ppo.config_for("CartPole-v1", total_steps=args.steps, staleness=0, **ppo.RL_ZOO_LAYOUT)
        ),
        "sebulba CartPole-v1 stale1": lambda: _ppo_row(
            ppo.config_for("CartPole-v1", total_steps=args.steps, staleness=1, **ppo.RL_ZOO_LAYOUT)
        ),
    }
    note = None
    if args.no_sb3:
        note = "sb3 row skipped (--no-sb3)"
    elif importlib.util.find_spec("stable_baselines3") is None:
        note = 'sb3 row skipped: stable_baselines3 is not importable (pip install -e ".[peers]")'
    else:
        rows["sb3 CartPole-v1"] = lambda: _sb3_row(
            ppo.Config(total_steps=args.steps, **ppo.RL_ZOO_LAYOUT)
        )

    print(
        f"# {datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, "
        f"{jax.devices()[0].device_kind}, jax {jax.__version__}; PPO ppo.RL_ZOO_LAYOUT sizes, "
        f"{args.steps} steps, median of {args.reps}"
    )
    print(f"{'loop / env':28s} {'steps/s':>9s} {'train s':>8s} {'compile s':>9s} {'eval':>6s}")
    results: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in rows}
    for _ in range(args.reps):  # interleave the rows so load changes hit them all alike
        for name, fn in rows.items():
            results[name].append(fn())
    for name, runs in results.items():
        sps, train_s, compile_s, ev = (statistics.median(c) for c in zip(*runs, strict=True))
        print(f"{name:28s} {sps:9.0f} {train_s:8.2f} {compile_s:9.2f} {ev:6.0f}")
    if note:
        print(f"# {note}")


if __name__ == "__main__":
    main()
