"""Throughput of PPO on phys2d/CartPole-v1 in the anakin loop: 1 and 2 devices, injected vs plain.

For each device count it trains the same PPO twice, side by side in this one process: with its
default injected optimizer (Adam whose learning rate is a `kl_target` schedule fed signals on every
update) and with a plain `optax.chain(clip_by_global_norm, adam)` of the same constants. Prints
env-steps/s during training (compile excluded), compile seconds, and the ratio of the two.

    python scripts/bench_anakin.py [--steps 100000] [--config default|purejaxrl] [--reps 3]
        [--envs N] [--devices 1,2]

On a CPU the devices are fake host devices (XLA_FLAGS is set below before jax is imported), so
2 "devices" share the same cores: the 2-device figure measures overhead, not a speed-up. On a
machine with one accelerator (XLA_FLAGS only multiplies CPU devices) the 2-device rows are
skipped with a note. With both device counts the last line is
`2-device/1-device throughput ratio: X.XXX` (the default injected optimizer).
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
import statistics  # noqa: E402

import jax  # noqa: E402
import optax  # noqa: E402

from inject_rl.agents import ppo  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--envs", type=int, default=None, help="override num_envs")
    parser.add_argument("--devices", default="1,2", help="device counts, e.g. 1 or 1,2")
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
    overrides = dict(CONFIGS[args.config])
    if args.envs is not None:
        overrides["num_envs"] = args.envs

    print(
        f"# {datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, "
        f"{jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}), "
        f"jax {jax.__version__}; config {args.config}, {args.steps} steps, median of {args.reps}"
    )
    print(
        f"{'devices':>7s} {'optimizer':>9s} {'steps/s':>10s} {'train s':>8s} {'compile s':>9s} "
        f"{'eval':>6s}"
    )
    injected_sps = {}
    for num_devices in counts:
        if num_devices > jax.device_count():
            print(
                f"{num_devices} device(s): skipped, only {jax.device_count()} "
                f"{jax.default_backend()} device(s) here"
            )
            continue
        cfg = ppo.Config(total_steps=args.steps, **overrides)
        rows = {}
        for _ in range(args.reps):  # alternate the variants so noise hits both alike
            for name, opt in (("injected", None), ("plain", plain_optimizer(cfg))):
                res = ppo.train(cfg, optimizer=opt, num_devices=num_devices)
                steps = int(res.metrics["step"][-1])
                rows.setdefault(name, []).append(
                    (steps / res.train_s, res.train_s, res.compile_s, ppo.evaluate(res))
                )
        for name, runs in rows.items():
            sps, train_s, compile_s, ev = (
                statistics.median(col) for col in zip(*runs, strict=True)
            )
            print(
                f"{num_devices:7d} {name:>9s} {sps:10.0f} {train_s:8.2f} {compile_s:9.2f} {ev:6.0f}"
            )
        inj = statistics.median(r[0] for r in rows["injected"])
        plain = statistics.median(r[0] for r in rows["plain"])
        print(f"{num_devices} device(s): injected/plain throughput ratio {inj / plain:.3f}")
        injected_sps[num_devices] = inj
    if 1 in injected_sps and 2 in injected_sps:
        print(f"2-device/1-device throughput ratio: {injected_sps[2] / injected_sps[1]:.3f}")


if __name__ == "__main__":
    main()
