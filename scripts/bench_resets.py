"""Autoreset under one `lax.cond` vs selects: our PPO's env steps/s with each, side by side.

`JaxEnv.step_batch` runs the resets under one `lax.cond` on "any env done" on the CPU (and for
envs with `costly_reset`, brax), and is `vmap(step)` (every env's reset computed, then selected)
elsewhere, because on a GPU a `lax.cond` waits for its predicate on the host every step. This
script measures that choice: PPO on phys2d CartPole-v1 in bench_ceiling's layout
(`bench_ceiling.ours_config`: N envs x 128 steps, 4 epochs x 4 minibatches, hidden (64, 64))
with the step traced as on the CPU ("cond") and as on an accelerator ("select"), repetitions
alternated in one process after one untimed warm-up run, compile excluded. Both give the same
results bit for bit; only the time differs.

    python scripts/bench_resets.py [--envs 8 2048] [--steps 100000 20000000] [--reps 3]

Ends with one `select/cond throughput ratio: X` line per env count (above 1: selects faster).
"""

from __future__ import annotations

import argparse
import statistics

import jax
from bench_ceiling import ROLLOUT_LEN, ours_config

from inject_rl.agents import ppo

BACKEND = jax.default_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[8, 2048])
    parser.add_argument("--steps", type=float, nargs="+", default=[1e5, 2e7])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if len(args.envs) != len(args.steps) or args.reps < 1 or min(args.envs + args.steps) < 1:
        parser.error(f"--envs and --steps need one value each per run, --reps >= 1: {vars(args)}")

    print(f"# jax {jax.__version__}, {BACKEND()}, {jax.devices()[0].device_kind}; "
          f"median of {args.reps}, variants alternated")  # fmt: skip
    # step_batch decides at trace time from jax.default_backend(); ppo.train traces anew on
    # every call (no program_key), so each variant gets its own program.
    variants = {"cond": lambda: "cpu", "select": lambda: "accelerator"}
    for envs, steps in zip(args.envs, args.steps, strict=True):
        iterations = max(1, round(steps / (envs * ROLLOUT_LEN)))
        cfg = ours_config(envs, iterations, iterations)
        times: dict[str, list[float]] = {name: [] for name in variants}
        ppo.train(cfg)  # untimed: a process's first training call pays one-time costs
        for rep in range(args.reps):
            for name, backend in variants.items():
                jax.default_backend = backend
                try:
                    r = ppo.train(cfg)
                finally:
                    jax.default_backend = BACKEND
                times[name].append(r.train_s)
                print(f"{envs} envs, {name:6s} rep {rep}: train {r.train_s:.3f} s, "
                      f"{cfg.total_steps / r.train_s:,.0f} steps/s", flush=True)  # fmt: skip
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"{envs} envs x {ROLLOUT_LEN} steps, {cfg.total_steps:,} steps: median train s "
              f"cond {med['cond']:.3f}, select {med['select']:.3f}")  # fmt: skip
        print(f"{envs} envs: select/cond throughput ratio: {med['cond'] / med['select']:.3f}")


if __name__ == "__main__":
    main()
