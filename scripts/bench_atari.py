"""Atari Pong through envpool (issue 13): env-only steps/s and PPO acting+learning steps/s.

`envpool/Pong-v5` is envpool's Atari with its own preprocessing (84x84 grayscale, 4 stacked
frames as `[84, 84, 4]`, frame skip 4, whole unclipped scores), so our PPO gets the Nature-DQN
conv stack (`networks.ConvTorso`, frames of 36 pixels a side and up) and one 512-unit layer.
Layout `PPO_ATARI` (rl-baselines3-zoo's and cleanrl's Atari PPO: 8 envs x 128 steps, 4 epochs
of 4 minibatches of 256, gamma 0.99, lambda 0.95, clip 0.1, entropy 0.01, value 0.5, gradient
clip 0.5), with our default `kl_target` learning rate from 2.5e-4 instead of their linear decay;
`ppo.config_for("envpool/Pong-v5")` when `ppo.PRESETS` has Pong (the caption says which).

Reported per repetition and as the median of `--reps`:

* env-only steps/s: `--num-envs` envpool envs stepped with random actions (no agent, no jax;
  `bench_host_envs.env_rate`), the ceiling the env puts on the loop;
* PPO steps/s: env steps per second of training, acting and learning together, compile
  excluded (`TrainResult.train_s`), on the sebulba loop (staleness 0: on-policy);
* compile s, the wall time of the whole run, the mean training return of the episodes that
  ended (Pong's episodes last about 800-4,000 steps: none may end in a short run, shown "—"),
  and with `--episodes N` the final policy's mean greedy return over N episodes.

    python scripts/bench_atari.py [--env Pong-v5] [--steps 20480] [--env-steps 20000]
        [--num-envs 8] [--reps 1] [--episodes 0] [--smoke]

`--smoke`: 2 envs, one PPO iteration (256 env steps: 16 gradient steps of 64 frames), 1,000
env-only steps and 1 greedy episode: that the whole path runs, not a figure (about 2.5 minutes
here at nice 19 on 2 loaded cores, most of it compiling). Needs the `envpool` extra.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from _peers import caption, iterations_per_call
from bench_host_envs import env_rate

PPO_ATARI: dict[str, Any] = dict(
    rollout_len=128,
    epochs=4,
    num_minibatches=4,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.1,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    lr_init=2.5e-4,
    hidden=(512,),
)


def ppo_config(env_id: str, steps: int, num_envs: int, seed: int) -> tuple[Any, str]:
    from inject_rl.agents import ppo

    if env_id in ppo.PRESETS or env_id.removeprefix("envpool/") in ppo.PRESETS:
        return ppo.config_for(env_id, seed=seed, total_steps=steps), "ppo.config_for preset"
    per_iteration = num_envs * PPO_ATARI["rollout_len"]
    cfg = ppo.Config(
        env_id=env_id,
        total_steps=steps,
        seed=seed,
        num_envs=num_envs,
        iterations_per_call=iterations_per_call(steps, per_iteration, 10),
        **PPO_ATARI,
    )
    return cfg, f"no {env_id} preset in ppo.PRESETS: the PPO_ATARI layout"


def ppo_run(env_id: str, steps: int, num_envs: int, seed: int, episodes: int) -> dict[str, Any]:
    from inject_rl.agents import ppo

    cfg, how = ppo_config(env_id, steps, num_envs, seed)
    t = time.perf_counter()
    res = ppo.train(cfg)
    wall = time.perf_counter() - t
    ret = np.asarray(res.metrics["episode_return"], np.float64).reshape(-1)
    count = np.asarray(res.metrics.get("episode_count", np.isfinite(ret)), np.float64).reshape(-1)
    ended = np.isfinite(ret) & (count > 0)
    out = dict(
        steps=int(res.metrics["step"][-1]),
        rate=int(res.metrics["step"][-1]) / res.train_s,
        compile=res.compile_s,
        wall=wall,
        episodes=int(count[ended].sum()),
        train_return=float(np.sum(ret[ended] * count[ended]) / count[ended].sum())
        if ended.any()
        else None,
        how=how,
        greedy=None,
    )
    if episodes:
        t = time.perf_counter()
        out["greedy"] = ppo.evaluate(res, episodes=episodes, seed=1000 + seed)
        out["eval_s"] = time.perf_counter() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pong-v5", help="envpool Atari task id")
    parser.add_argument("--steps", type=int, default=20_480, help="PPO env steps per run")
    parser.add_argument("--env-steps", type=int, default=20_000, help="env-only steps per run")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=0, help="greedy episodes after training")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that the path works")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.env_steps, args.num_envs, args.reps, args.episodes = 256, 1_000, 2, 1, 1
    if min(args.steps, args.env_steps, args.num_envs, args.reps) < 1 or args.episodes < 0:
        parser.error("--steps, --env-steps, --num-envs and --reps must be >= 1, --episodes >= 0")
    env_id = "envpool/" + args.env.removeprefix("envpool/")
    print(caption(("envpool",)) + "\n")

    rows = []
    for rep in range(args.reps):
        task = args.env.removeprefix("envpool/")
        env_only = env_rate(task, "envpool", args.env_steps, args.num_envs, rep)
        r = ppo_run(env_id, args.steps, args.num_envs, rep, args.episodes)
        rows.append(dict(r, env_only=env_only, seed=rep))
        shown = "—" if r["train_return"] is None else f"{r['train_return']:.1f}"
        print(
            f"  rep {rep}: env-only {env_only:,.0f}/s, PPO {r['rate']:,.0f}/s "
            f"({r['steps']} steps, compile {r['compile']:.1f} s, wall {r['wall']:.1f} s, "
            f"{r['episodes']} episodes ended, training return {shown}"
            + (f", greedy {r['greedy']:.1f} in {r['eval_s']:.0f} s" if args.episodes else "")
            + ")",
            flush=True,
        )
    print(f"\n{rows[0]['how']}; {args.num_envs} envs; median of {args.reps}\n")
    med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    returns = [r["train_return"] for r in rows if r["train_return"] is not None]
    greedy = [r["greedy"] for r in rows if r["greedy"] is not None]
    print(
        "| env | env-only steps/s | PPO acting+learning steps/s | PPO env steps | compile s | "
        "wall s | training return | greedy return |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    shown_return = f"{statistics.median(returns):.1f}" if returns else "—"
    shown_greedy = f"{statistics.median(greedy):.1f}" if greedy else "—"
    print(
        f"| {env_id} | {med('env_only'):,.0f} | {med('rate'):,.0f} | {rows[0]['steps']} | "
        f"{med('compile'):.1f} | {med('wall'):.1f} | {shown_return} | {shown_greedy} |"
    )


if __name__ == "__main__":
    main()
