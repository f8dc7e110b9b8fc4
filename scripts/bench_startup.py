"""Where start-up goes, cold and warm caches, for PPO and DQN on phys2d/CartPole-v1.

For each agent, a fresh process (so imports are really paid) times the imports, then one call of
the agent's `train()` on a 1e5-step budget, named with a program key as the CLI names its runs.
Inside that call jax's own duration events split the time into tracing, lowering and XLA
compile (or loading from the persistent compilation cache); `compile_s` is the loop's whole
phase before the first training call (init, programs, compile) and `train_s` its calls. "cold"
starts from empty caches; "warm" re-runs with the caches the cold run filled, so it loads the
exported programs (no tracing or lowering) and the compiled executables.

Then the whole-process wall time of `inject-rl train --agent ppo --env phys2d/CartPole-v1
--steps 100000`, cold and warm, as the median of `--repeats` pairs, each pair on a fresh cache;
and stable-baselines3's PPO `learn()` on CartPole-v1 with the same budget (when installed):
with rl-baselines3-zoo's CartPole hyperparameters (the peer's tuned layout: 8 envs x 32 steps,
20 epochs, two 64-unit layers), and with our default's layout (8 x 32, 10 epochs, one 64-unit
layer, gamma 0.99, lambda 0.95), next to our `train()` call (compile + train) warm.

    python scripts/bench_startup.py [--steps 100000] [--repeats 3] [--agents ppo,dqn] [--no-cli]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

from _peers import rl_zoo_ppo

PROBE = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import importlib
    agent = importlib.import_module("inject_rl.agents." + sys.argv[1])
    import jax
    from inject_rl import cache
    t_import = time.perf_counter() - t0
    events = {}

    def listen(event, duration, **kwargs):
        events[event] = events.get(event, 0.0) + duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    cfg = agent.Config(total_steps=int(sys.argv[2]))
    t = time.perf_counter()
    res = agent.train(cfg, program_key=cache.fingerprint("bench_startup", repr(cfg)))
    t_train = time.perf_counter() - t

    def total(name):
        return events.get("/jax/core/compile/" + name, 0.0)

    print(json.dumps(dict(
        imports=t_import, tracing=total("jaxpr_trace_duration"),
        lowering=total("jaxpr_to_mlir_module_duration"),
        xla_compile=total("backend_compile_duration"), compile_s=res.compile_s,
        train_s=res.train_s, train_call=t_train, total=time.perf_counter() - t0)))
    """
)
COLUMNS = (
    "imports",
    "tracing",
    "lowering",
    "xla_compile",
    "compile_s",
    "train_s",
    "train_call",
    "total",
)


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
        "inject_rl.cli",
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


# Changes to rl-zoo's settings (scripts/_peers.py): constant rates in both runs, and our
# default's layout in the second.
SB3_ZOO = dict(learning_rate=1e-3, clip_range=0.2)
SB3_OURS = dict(SB3_ZOO, gae_lambda=0.95, gamma=0.99, n_epochs=10, net_arch=[64])


def sb3_learn(steps: int, changes: dict) -> float | None:
    """Seconds of stable-baselines3 PPO `learn()` on CartPole-v1 (8 envs), or None."""
    try:
        model = rl_zoo_ppo(0, **changes)
    except ImportError:
        return None
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="cold/warm CLI pairs")
    parser.add_argument(
        "--agents",
        default="ppo,dqn",
        help="comma-separated agents to probe on their default envs (impala and sac default to "
        "host envs: the sebulba loop, which has no program cache)",
    )
    parser.add_argument("--no-cli", action="store_true", help="probe the agents only")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = sorted(set(agents) - {"ppo", "dqn", "impala", "sac"})
    if unknown or not agents:
        parser.error(f"--agents: unknown {unknown or agents}; allowed: ppo, dqn, impala, sac")
    if "ppo" not in agents and not args.no_cli:
        parser.error("the CLI and stable-baselines3 rows compare with ppo: add it or --no-cli")
    print(
        f"_{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores; "
        f"`{' '.join(['python', 'scripts/bench_startup.py', *sys.argv[1:]])}`_\n"
    )
    print("| agent | caches | " + " | ".join(f"{c} s" for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for agent in agents:
            cache_dir = os.path.join(tmp, f"cache-{agent}")
            for mode in ("cold", "warm"):
                r = probe(agent, args.steps, cache_dir)
                rows[agent, mode] = r
                print(
                    f"| {agent} | {mode} | " + " | ".join(f"{r[c]:.2f}" for c in COLUMNS) + " |",
                    flush=True,
                )
        if args.no_cli:
            return
        colds, warms = [], []
        for i in range(args.repeats):
            cli_cache = os.path.join(tmp, f"cache-cli-{i}")
            colds.append(cli_wall(args.steps, cli_cache, os.path.join(tmp, "run")))
            warms.append(cli_wall(args.steps, cli_cache, os.path.join(tmp, "run")))
    cold, warm = statistics.median(colds), statistics.median(warms)
    ours = rows["ppo", "warm"]["train_call"]
    print("\n| measure | seconds | ratio |\n|---|---|---|")
    runs = ", ".join(f"{c:.2f}/{w:.2f}" for c, w in zip(colds, warms, strict=True))
    print(f"| `inject-rl train` whole process, cold caches (median) | {cold:.2f} | 1.00 |")
    print(
        f"| `inject-rl train` whole process, warm caches (median) | {warm:.2f} | warm/cold "
        f"{warm / cold:.2f} (pairs cold/warm: {runs}) |"
    )
    print(f"| PPO `train()` warm: compile + train | {ours:.2f} | |")
    for name, layout in (("rl-zoo layout", SB3_ZOO), ("our default's layout", SB3_OURS)):
        sb3 = sb3_learn(args.steps, layout)
        if sb3 is None:
            print("| stable-baselines3 PPO learn() | not installed (pip install -e '.[peers]') | |")
            break
        print(
            f"| stable-baselines3 PPO learn(), {name} | {sb3:.2f} | SB3 / ours {sb3 / ours:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
