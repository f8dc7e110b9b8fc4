"""Host-loop backends side by side: PPO on the sebulba loop with gymnasium sync, gymnasium async
and envpool vector envs, on CartPole-v1 and HalfCheetah-v5.

For each env the same PPO Config (`--num-envs` envs x 32 steps, staleness 0: on-policy, the
actor waits for each update) trains on the three backends; only the env id
(`envpool/<TaskId>` for envpool) and `vectorization` differ. Reported per backend, the median
of `--reps` runs, the variants alternated within each repetition so that a change in the
machine's load hits all of them alike:

* ppo steps/s: env steps per second of training, compile excluded (`TrainResult.train_s`);
* env steps/s: the host env alone, stepped with random actions (no agent, no jax), the ceiling
  the backend puts on the loop;
* compile s: tracing and compiling (the same program on every backend: its env only feeds it).

Then the ratios envpool / sync and async / sync of both rates.

    python scripts/bench_host_envs.py [--steps 20000] [--reps 3] [--num-envs 8] [--envs ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import jax
import numpy as np

from inject_rl import envs
from inject_rl.agents import ppo

BACKENDS = ("sync", "async", "envpool")


def _variant(env_id: str, backend: str) -> tuple[str, str]:
    """(env id, vectorization) of a backend."""
    if backend == "envpool":
        return envs.ENVPOOL_PREFIX + env_id, "sync"
    return env_id, backend


def ppo_rate(env_id: str, backend: str, steps: int, num_envs: int, seed: int) -> tuple:
    env, vectorization = _variant(env_id, backend)
    cfg = ppo.Config(
        env_id=env,
        vectorization=vectorization,
        total_steps=steps,
        num_envs=num_envs,
        rollout_len=32,
        seed=seed,
    )
    res = ppo.train(cfg)
    return int(res.metrics["step"][-1]) / res.train_s, res.compile_s


def env_rate(env_id: str, backend: str, steps: int, num_envs: int, seed: int) -> float:
    env_id, vectorization = _variant(env_id, backend)
    rng = np.random.default_rng(seed)
    with envs.host_env(env_id, num_envs, vectorization=vectorization) as env:
        env.reset(seed=seed)
        if env.discrete:
            actions = rng.integers(0, env.num_actions, (64, num_envs))
        else:
            shape = (64, num_envs, *env.action_shape)
            actions = rng.uniform(env.action_low, env.action_high, shape).astype(np.float32)
        calls = max(1, steps // num_envs)
        t = time.perf_counter()
        for i in range(calls):
            env.step(actions[i % 64])
        return calls * num_envs / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="PPO env steps per run")
    parser.add_argument("--env-steps", type=int, default=20_000, help="env-only steps per run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--envs", default="CartPole-v1,HalfCheetah-v5")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    env_ids = args.envs.split(",")
    backends = args.backends.split(",")
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; allowed: {', '.join(BACKENDS)}")

    print(
        f"# {datetime.date.today()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, jax {jax.__version__} on {jax.devices()[0].platform}; "
        f"PPO {args.num_envs} envs x 32 steps, {args.steps} steps, median of {args.reps}"
    )
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for rep in range(args.reps):
        for env_id in env_ids:
            order = backends if rep % 2 == 0 else backends[::-1]  # alternate the order too
            for backend in order:
                row = rows.setdefault((env_id, backend), {"ppo": [], "env": [], "compile": []})
                rate, compile_s = ppo_rate(env_id, backend, args.steps, args.num_envs, rep)
                row["ppo"].append(rate)
                row["compile"].append(compile_s)
                row["env"].append(env_rate(env_id, backend, args.env_steps, args.num_envs, rep))
                print(
                    f"  rep {rep} {env_id:15s} {backend:8s} ppo {rate:9.0f}/s  "
                    f"env {row['env'][-1]:9.0f}/s  compile {compile_s:5.1f} s",
                    flush=True,
                )

    med = {k: {m: statistics.median(v) for m, v in row.items()} for k, row in rows.items()}
    print()
    print("| env | backend | PPO env steps/s | env-only steps/s | compile s |")
    print("|---|---|---:|---:|---:|")
    for (env_id, backend), m in med.items():
        print(f"| {env_id} | {backend} | {m['ppo']:,.0f} | {m['env']:,.0f} | {m['compile']:.1f} |")
    print()
    for env_id in env_ids:
        sync = med.get((env_id, "sync"))
        for other in ("envpool", "async"):
            m = med.get((env_id, other))
            if sync and m:
                print(
                    f"{env_id}: {other}/sync  PPO {m['ppo'] / sync['ppo']:.2f}x, "
                    f"env-only {m['env'] / sync['env']:.2f}x"
                )


if __name__ == "__main__":
    main()
