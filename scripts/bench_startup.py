"""Where start-up goes, cold and warm compilation cache, for PPO and DQN on phys2d/CartPole-v1.

For each agent, a fresh process (so imports are really paid) reports: importing the agent,
building and running the initial state (trace + compile + run of `init`), tracing and lowering
the training step, XLA compile (or loading it from the persistent cache), the first call and
the remaining calls. "cold" uses an empty cache directory, "warm" re-runs with the cache the
cold run filled. Then the whole-process wall time of
`inject-rl train --agent ppo --env phys2d/CartPole-v1 --steps 100000`, cold and warm, and
stable-baselines3's PPO `learn()` on CartPole-v1 with the same budget and rl-zoo layout, when
installed, as ratios.

    python scripts/bench_startup.py [--steps 100000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

PROBE = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import importlib
    agent = importlib.import_module("agents." + sys.argv[1])
    import jax
    from inject_rl import cache, envs, loops
    cache.enable()
    t_import = time.perf_counter() - t0
    cfg = agent.Config(total_steps=int(sys.argv[2]))
    env = envs.make(cfg.env_id)
    opt = agent.default_optimizer(cfg)
    init, iteration, _ = agent.make_learner(cfg, env, opt, 1)
    devices = loops.devices_for(1)
    t = time.perf_counter()
    state = jax.pmap(init, axis_name=loops.DEVICE_AXIS, devices=devices)(jax.numpy.arange(1))
    jax.block_until_ready(state)
    t_init = time.perf_counter() - t

    def call(s):
        return jax.lax.scan(lambda c, _: iteration(c, loops.DEVICE_AXIS), s, None,
                            length=cfg.iterations_per_call)

    t = time.perf_counter()
    lowered = jax.pmap(call, axis_name=loops.DEVICE_AXIS, devices=devices,
                       donate_argnums=0).lower(state)
    t_lower = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    t_compile = time.perf_counter() - t
    t = time.perf_counter()
    state, m = compiled(state)
    jax.block_until_ready(m)
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(cfg.num_calls - 1):
        state, m = compiled(state)
        jax.device_get(m)
    t_rest = time.perf_counter() - t
    print(json.dumps(dict(imports=t_import, init=t_init, trace_lower=t_lower, xla_compile=t_compile,
                          first_call=t_first, other_calls=t_rest,
                          total=time.perf_counter() - t0)))
    """
)
COLUMNS = ("imports", "init", "trace_lower", "xla_compile", "first_call", "other_calls", "total")


def probe(agent: str, steps: int, cache_dir: str) -> dict:
    env = {**os.environ, "INJECT_RL_COMPILE_CACHE": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, agent, str(steps)],
        env=env,
        text=True,
        capture_output=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_wall(steps: int, cache_dir: str, out_dir: str) -> float:
    env = {**os.environ, "INJECT_RL_COMPILE_CACHE": cache_dir}
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "agents.cli",
        "train",
        "--agent",
        "ppo",
        "--env",
        "phys2d/CartPole-v1",
        "--steps",
        str(steps),
        "--out",
        out_dir,
        "--quiet",
    ]
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def sb3_learn(steps: int) -> float | None:
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env
    except ImportError:
        return None
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=1e-3,
        seed=0,
        device="cpu",
        verbose=0,
    )
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    print(
        f"_{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores; "
        f"`python scripts/bench_startup.py --steps {args.steps}`_\n"
    )
    print("| agent | cache | " + " | ".join(f"{c} s" for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for agent in ("ppo", "dqn"):
            cache_dir = os.path.join(tmp, f"cache-{agent}")
            for mode in ("cold", "warm"):
                r = probe(agent, args.steps, cache_dir)
                rows[agent, mode] = r
                print(
                    f"| {agent} | {mode} | " + " | ".join(f"{r[c]:.2f}" for c in COLUMNS) + " |",
                    flush=True,
                )
        cli_cache = os.path.join(tmp, "cache-cli")
        cold = cli_wall(args.steps, cli_cache, os.path.join(tmp, "run"))
        warm = cli_wall(args.steps, cli_cache, os.path.join(tmp, "run"))
    sb3 = sb3_learn(args.steps)
    ppo_warm = rows["ppo", "warm"]
    compile_train = ppo_warm["xla_compile"] + ppo_warm["first_call"] + ppo_warm["other_calls"]
    print("\n| measure | seconds | ratio |\n|---|---|---|")
    print(f"| `inject-rl train` whole process, cold cache | {cold:.1f} | 1.00 |")
    print(
        f"| `inject-rl train` whole process, warm cache | {warm:.1f} | warm/cold "
        f"{warm / cold:.2f} |"
    )
    print(f"| PPO warm compile + train (probe) | {compile_train:.2f} | |")
    if sb3 is None:
        print("| stable-baselines3 PPO learn() | not installed (pip install -e '.[peers]') | |")
    else:
        print(
            f"| stable-baselines3 PPO learn(), same budget | {sb3:.1f} | SB3 / ours "
            f"{sb3 / compile_train:.1f}x |"
        )


if __name__ == "__main__":
    main()
