"""PPO on a brax env in the anakin loop: compile time, env-steps/s and the final return.

    python scripts/brax_ppo.py [--env brax/halfcheetah] [--steps 50000000] [--devices 1]
        [--layout brax|smoke|pendulum] [--num-envs N] [--rollout-len T] [--seed S]
        [--eval-episodes N]

`--layout brax` (the default) is brax's own PPO layout for halfcheetah (its training notebook:
2048 envs, unroll 20 x 8 per env and iteration, 32 minibatches of 512 x 20 steps, 8 epochs,
gamma 0.95, learning rate 3e-4, entropy cost 1e-3, observation normalisation; `BRAX_LAYOUT`
below) on top of `ppo.config_for(env)`: 327,680 env steps per iteration, meant for a GPU.
`--layout smoke` is a CPU-sized one (16 envs x 20 steps, 4 minibatches, 2 epochs) for
checking that everything runs. `--layout pendulum` is brax's own PPO layout for
inverted_pendulum (`PENDULUM_LAYOUT`: 2048 envs, 2M env steps), which learns on a CPU in
minutes: `python scripts/brax_ppo.py --env brax/inverted_pendulum --layout pendulum`. The
env's physics backend is part of the id (`brax/halfcheetah@spring`; see `inject_rl.envs.make`).

Prints one line per host call (its last step, return and seconds since training began), then
compile seconds (tracing, lowering and XLA compilation of the training step), env-steps/s over
the compiled calls (compile excluded), the mean return of the episodes that ended in the last
iteration that ended any, and with `--eval-episodes N` the greedy return of N episodes (one more
program to compile).

On 2 shared, busy CPU cores (`--layout smoke`, halfcheetah, 1 device) the training step compiled
in 86-127 s and trained at about 1,000-1,200 env-steps/s on the default generalized backend;
`brax/halfcheetah@spring` compiled in 177 s and trained at 2,300 env-steps/s.
"""

from __future__ import annotations

import os
import sys

# Fake CPU devices for --devices N must be set before jax is imported.
_n = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--devices=")), None)
if "--devices" in sys.argv[:-1]:
    _n = sys.argv[sys.argv.index("--devices") + 1]
if _n is not None and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_n}"
    ).strip()

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from inject_rl import envs  # noqa: E402
from inject_rl.agents import ppo  # noqa: E402

# brax's PPO settings for halfcheetah (brax training notebook / its config files):
# num_envs=2048, unroll_length=20, batch_size=512, num_minibatches=32, num_updates_per_batch=8,
# discounting=0.95, learning_rate=3e-4, entropy_cost=1e-3, reward_scaling=1,
# normalize_observations=True, episode_length=1000, num_timesteps=50M; brax's defaults
# clipping_epsilon=0.3, gae_lambda=0.95, vf_loss_coefficient=0.5 (our vf_coef=0.5 weighs the same
# 0.25 * squared error), max_grad_norm=None. One brax iteration gathers
# batch_size * num_minibatches = 16,384 unrolls of 20 steps from 2048 envs: 8 unrolls each, so
# here 160 steps per env (GAE over the 160 steps rather than per 20-step unroll; we bootstrap on
# time-outs, brax by default does not). Networks: brax uses (32,)*4 for the policy and (256,)*5
# for the value with swish; ours share one `hidden` with tanh, here (256, 256).
BRAX_LAYOUT = dict(
    total_steps=50_000_000,
    num_envs=2048,
    rollout_len=160,
    num_minibatches=32,
    epochs=8,
    gamma=0.95,
    gae_lambda=0.95,
    clip_eps=0.3,
    ent_coef=1e-3,
    vf_coef=0.5,
    learning_rate=3e-4,
    max_grad_norm=1e9,  # brax: no clipping (Config wants a positive number)
    hidden=(256, 256),
    normalize_obs=True,
    iterations_per_call=8,  # 2.6M env steps per host call: 20 calls for 50M steps
)
SMOKE_LAYOUT = dict(
    BRAX_LAYOUT, num_envs=16, rollout_len=20, num_minibatches=4, epochs=2, hidden=(64, 64)
)
# brax's PPO settings for inverted_pendulum (its training configs): num_timesteps=2M,
# num_envs=2048, unroll_length=5, batch_size=1024, num_minibatches=32, num_updates_per_batch=4,
# discounting=0.97, learning_rate=3e-4, entropy_cost=1e-2, reward_scaling=10,
# normalize_observations=True, episode_length=1000: 32,768 unrolls of 5 steps per iteration,
# 80 steps per env here. A cheap env (a cart and a pole) that learns within CPU minutes: the
# learning check of the brax adapter without an accelerator. brax's reward_scaling=10 has no
# counterpart here (the return-std scaling `normalize_reward` stands in for it).
PENDULUM_LAYOUT = dict(
    BRAX_LAYOUT,
    total_steps=2_000_000,
    rollout_len=80,
    epochs=4,
    gamma=0.97,
    ent_coef=1e-2,
    hidden=(64, 64),
    normalize_reward=True,
    iterations_per_call=1,
)
LAYOUTS = {"brax": BRAX_LAYOUT, "smoke": SMOKE_LAYOUT, "pendulum": PENDULUM_LAYOUT}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="brax/halfcheetah")
    p.add_argument("--steps", type=int, default=None, help="env steps (default: the layout's)")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="brax")
    p.add_argument("--num-envs", type=int, default=None)
    p.add_argument("--rollout-len", type=int, default=None)
    p.add_argument("--iterations-per-call", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=0)
    args = p.parse_args()

    overrides = dict(LAYOUTS[args.layout], seed=args.seed)
    for field in ("steps", "num_envs", "rollout_len", "iterations_per_call"):
        value = getattr(args, field)
        if value is not None:
            overrides["total_steps" if field == "steps" else field] = value
    t0 = time.perf_counter()
    env = envs.make(args.env)  # refuses an unknown id or a missing brax in one line
    make_s = time.perf_counter() - t0
    cfg = ppo.config_for(args.env, **overrides).validate()
    steps = cfg.num_calls * cfg.iterations_per_call * cfg.steps_per_iteration
    print(
        f"{args.env} on {args.devices} x {jax.devices()[0].device_kind} "
        f"(obs {env.obs_shape}, actions {env.action_shape}); layout {args.layout}: "
        f"{cfg.num_envs} envs x {cfg.rollout_len} steps, {cfg.num_minibatches} minibatches, "
        f"{cfg.epochs} epochs; {cfg.num_calls} calls x {cfg.iterations_per_call} iterations = "
        f"{steps:,} env steps",
        flush=True,
    )

    # Seconds since training began at each call's end: a run stopped early (a time limit) still
    # shows its throughput from the differences between calls (the first call includes compile).
    started = time.perf_counter()

    def report(call, metrics, state=None):
        ret = metrics["episode_return"]
        last = ret[np.isfinite(ret)]
        shown = f"{last[-1]:.1f}" if last.size else "-"
        print(f"  call {call + 1}/{cfg.num_calls}: step {int(metrics['step'][-1]):,}, "
              f"return {shown}, {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip

    r = ppo.train(cfg, num_devices=args.devices, callback=report)
    returns = r.metrics["episode_return"]
    finished = returns[np.isfinite(returns)]
    final = float(finished[-1]) if finished.size else math.nan
    print(f"make {make_s:.1f} s, compile {r.compile_s:.1f} s, train {r.train_s:.1f} s")
    print(f"steps/s (compile excluded): {steps / r.train_s:,.0f}")
    print(f"final training return: {final:.1f}")
    if args.eval_episodes:
        t = time.perf_counter()
        greedy = ppo.evaluate(r, episodes=args.eval_episodes, seed=args.seed)
        print(f"greedy return ({args.eval_episodes} episodes): {greedy:.1f} "
              f"({time.perf_counter() - t:.1f} s with its compile)")  # fmt: skip


if __name__ == "__main__":
    main()
