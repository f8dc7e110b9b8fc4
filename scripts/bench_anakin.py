"""Throughput of agents on phys2d/CartPole-v1 in the anakin loop: 1 and 2 devices.

For each device count it trains PPO twice, side by side in this one process: with its default
injected optimizer (Adam whose learning rate is a `kl_target` schedule fed signals on every
update) and with a plain `optax.chain(clip_by_global_norm, adam)` of the same constants. DQN and
IMPALA (`--agents ppo,dqn,impala`) train with their default injected optimizers only. Prints
env-steps/s during training (compile excluded), compile seconds, greedy return, and the ratios.

    python scripts/bench_anakin.py [--steps 100000] [--config default|purejaxrl] [--reps 3]
        [--envs N] [--devices 1,2] [--agents ppo,dqn,impala] [--packed]

`--packed` adds a third PPO variant, its default optimizer with the state packed
(`optim.packed`: the scalars in one vector, fewer kernels per update, which a GPU pays per
launch), and a `packed/plain throughput ratio` line per device count.

`--config` picks a PPO layout (the other agents use their phys2d/CartPole-v1 presets); `--envs`
overrides every agent's `num_envs`. On a CPU the devices are fake host devices (XLA_FLAGS is set
below before jax is imported), so 2 "devices" share the same cores: the 2-device figure measures
overhead, not a speed-up. On a machine with one accelerator (XLA_FLAGS only multiplies CPU
devices) the 2-device rows are skipped with a note. With 2 devices available each agent also
gets a collectives line: the all-reduce ops of one learner iteration on 2 devices in the lowered
and in the compiled program (XLA may combine some), and the run ends with the latency of one
all-reduce on 1 and on 2 devices (`all_reduce_us`). With both device counts the output ends
with `<agent> 2-device/1-device throughput ratio: X.XXX` for DQN and IMPALA when run, then
PPO's line as before, `2-device/1-device throughput ratio: X.XXX` (default injected optimizers).
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from inject_rl import agents, loops, optim  # noqa: E402
from inject_rl.agents import ppo  # noqa: E402
from inject_rl.agents._train import learner  # noqa: E402
from inject_rl.loops import _programs  # noqa: E402

AGENTS = ("ppo", "dqn", "impala")
ENV_ID = "phys2d/CartPole-v1"

CONFIGS = {
    "default": {},
    "rl-zoo": ppo.RL_ZOO_LAYOUT,
    # purejaxrl's CartPole PPO layout: 4 envs x 128 steps, 4 epochs x 4 minibatches.
    "purejaxrl": dict(
        num_envs=4,
        rollout_len=128,
        epochs=4,
        num_minibatches=4,
        gamma=0.99,
        gae_lambda=0.95,
        lr_init=2.5e-4,
        kl_target=0.02,
        hidden=(64, 64),
        iterations_per_call=5,
    ),
}


def plain_optimizer(cfg: ppo.Config) -> optax.GradientTransformationExtraArgs:
    return optax.with_extra_args_support(
        optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr_init, eps=1e-5))
    )


def config(name: str, steps: int, overrides: dict):
    """The agent's Config: PPO in the chosen layout, the others from their phys2d preset."""
    if name == "ppo":
        return ppo.Config(total_steps=steps, **overrides)
    extra = {"num_envs": overrides["num_envs"]} if "num_envs" in overrides else {}
    return agents.get(name).config_for(ENV_ID, total_steps=steps, **extra)


def variants(
    name: str, cfg, packed: bool = False
) -> list[tuple[str, optax.GradientTransformationExtraArgs | None]]:
    """(name, optimizer): the default injected one (None), for PPO the plain one, and with
    `packed` PPO's default one with its state packed."""
    if name != "ppo":
        return [("injected", None)]
    packed_variant = [("packed", optim.packed(ppo.default_optimizer(cfg)))] if packed else []
    return [("injected", None), ("plain", plain_optimizer(cfg)), *packed_variant]


def all_reduces(name: str, cfg, num_devices: int = 2) -> tuple[int, int]:
    """All-reduce ops of one learner iteration on `num_devices` devices, lowered and compiled,
    as the anakin loop builds it (issue 16 item 1)."""
    agent = agents.get(name)
    init, iteration = learner(agent, cfg, agent.default_optimizer(cfg), num_devices)[1]
    programs = _programs.build(
        init,
        lambda s: iteration(s, loops.DEVICE_AXIS),
        loops.DEVICE_AXIS,
        jax.devices()[:num_devices],
        None,
    )
    lowered = programs.step.lower(*programs.init(jnp.arange(num_devices, dtype=jnp.int32)))
    text = lowered.as_text()
    compiled = lowered.compile().as_text()
    ops = [line for line in text.splitlines() if "all_reduce" in line]
    return len(ops), len(re.findall(r"\sall-reduce(?:-start)?\(", compiled))


def all_reduce_us(num_devices: int, size: int = 16, steps: int = 1000, reps: int = 5) -> float:
    """Microseconds per `pmean` of `size` floats over `num_devices` devices, median of `reps`
    timed scans of `steps` pmeans each: the latency every gradient step of a data-parallel
    learner pays once (its gradients and signals travel in one packed all-reduce)."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:num_devices]), (loops.DEVICE_AXIS,))
    spec = jax.sharding.PartitionSpec(loops.DEVICE_AXIS)

    def body(x):
        def step(c, _):
            return jax.lax.pmean(c, loops.DEVICE_AXIS) * 0.5 + 1.0, None

        return jax.lax.scan(step, x, None, length=steps)[0]

    f = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False))
    x = jnp.ones((num_devices * size,))
    jax.block_until_ready(f(x))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t)
    return statistics.median(times) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--envs", type=int, default=None, help="override num_envs")
    parser.add_argument("--devices", default="1,2", help="device counts, e.g. 1 or 1,2")
    parser.add_argument("--agents", default="ppo", help=f"some of {','.join(AGENTS)}")
    parser.add_argument("--packed", action="store_true", help="also PPO with optim.packed")
    args = parser.parse_args()
    if args.steps < 1 or args.reps < 1:
        parser.error(f"--steps and --reps must be >= 1, got {args.steps=} {args.reps=}")
    if args.envs is not None and args.envs < 1:
        parser.error(f"--envs must be >= 1, got {args.envs=}")
    try:
        counts = [int(d) for d in args.devices.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        parser.error(f"--devices must be positive integers separated by commas, got {args.devices}")
    names = [a.strip() for a in args.agents.split(",") if a.strip()]
    if not names or any(n not in AGENTS for n in names):
        parser.error(f"--agents must be some of {','.join(AGENTS)}, got {args.agents}")
    overrides = dict(CONFIGS[args.config])
    if args.envs is not None:
        overrides["num_envs"] = args.envs

    print(
        f"# {datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, "
        f"{jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}), "
        f"jax {jax.__version__}; config {args.config}, {args.steps} steps, median of {args.reps}"
    )
    print(
        f"{'agent':>6s} {'devices':>7s} {'optimizer':>9s} {'steps/s':>10s} {'train s':>8s} "
        f"{'compile s':>9s} {'eval':>6s}"
    )
    ratios = {}
    for name in names:
        agent = agents.get(name)
        injected_sps = {}
        for num_devices in counts:
            if num_devices > jax.device_count():
                print(
                    f"{name}: {num_devices} device(s): skipped, only {jax.device_count()} "
                    f"{jax.default_backend()} device(s) here"
                )
                continue
            cfg = config(name, args.steps, overrides)
            rows = {}
            for _ in range(args.reps):  # alternate the variants so noise hits both alike
                for variant, opt in variants(name, cfg, args.packed):
                    res = agent.train(cfg, optimizer=opt, num_devices=num_devices)
                    steps = int(res.metrics["step"][-1])
                    rows.setdefault(variant, []).append(
                        (steps / res.train_s, res.train_s, res.compile_s, agent.evaluate(res))
                    )
            for variant, runs in rows.items():
                sps, train_s, compile_s, ev = (
                    statistics.median(col) for col in zip(*runs, strict=True)
                )
                print(
                    f"{name:>6s} {num_devices:7d} {variant:>9s} {sps:10.0f} {train_s:8.2f} "
                    f"{compile_s:9.2f} {ev:6.0f}"
                )
            inj = statistics.median(r[0] for r in rows["injected"])
            if "plain" in rows:
                plain = statistics.median(r[0] for r in rows["plain"])
                print(f"{num_devices} device(s): injected/plain throughput ratio {inj / plain:.3f}")
                if "packed" in rows:
                    packed = statistics.median(r[0] for r in rows["packed"])
                    print(
                        f"{num_devices} device(s): packed/plain throughput ratio "
                        f"{packed / plain:.3f}"
                    )
            injected_sps[num_devices] = inj
        if jax.device_count() >= 2:
            lowered, compiled = all_reduces(name, config(name, args.steps, overrides))
            print(
                f"{name} all-reduces of one iteration on 2 devices: lowered {lowered}, "
                f"compiled {compiled}"
            )
        if 1 in injected_sps and 2 in injected_sps:
            ratios[name] = injected_sps[2] / injected_sps[1]
    if jax.device_count() >= 2:
        # What bounds the 2-device figure on fake CPU devices: each all-reduce is a rendezvous
        # of the two devices' threads, paid once per gradient step (PPO's default layout: 10
        # per iteration of 256 env steps).
        print(
            f"all-reduce latency (pmean of 16 floats in a scan): 1 device "
            f"{all_reduce_us(1):.2f} us, 2 devices {all_reduce_us(2):.2f} us"
        )
    for name, ratio in ratios.items():
        if name != "ppo":
            print(f"{name} 2-device/1-device throughput ratio: {ratio:.3f}")
    if "ppo" in ratios:
        print(f"2-device/1-device throughput ratio: {ratios['ppo']:.3f}")


if __name__ == "__main__":
    main()
