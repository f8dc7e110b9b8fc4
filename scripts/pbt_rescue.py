"""PBT rescuing a bad start: every member of a population at one too-small learning rate.

For each of `--seeds` base seeds, a population of `--size` members of `--agent` (PPO and DQN on
phys2d/CartPole-v1, SAC on phys2d/Pendulum-v0), every member starting at `--lr`, PBT every
`--interval` iterations (x0.5 or x2) on the hyperparameters scripts/robustness.py's PBT perturbs
for that agent (PPO, DQN: `learning_rate`; SAC: the actor's and the critic's rates), `--steps`
env steps per member (default: PPO 1e5, the others their preset's, as robustness.py); all
populations side by side in one program (`PBT(groups=...)`). The rates are set as
robustness.py's `Setup` sets them (DQN: `lr_init`, with `lr_final` at the preset's ratio; SAC:
`--lr` is the actor's rate, the critic's and alpha's keep the preset's ratios to it).
`--lr` defaults to PPO's 3e-5 and, for DQN and SAC, to the lowest rate of robustness.py's
4-point grid (the preset's rate / 100).
`--rule` picks how each member's rate moves between PBT steps:

- `constant` (default): it does not; PBT alone moves it;
- `kl_target` (PPO), `progress` (DQN): the agent's default rule from `--lr` (`--kl`: kl_target);
- `hypergradient`: hypergradient descent (Baydin et al. 2018; `schedules.hypergradient(--lr,
  beta=--beta)` with its default bounds, the optimizer in `optim.update_alignment`; SAC one per
  part); PBT scales the schedule's current value, so it perturbs the rate the rule goes on from.

Prints each population's best member's greedy return (20 episodes) and its rate's quartiles over
training, then the same rule from `--lr` without PBT (one member per base seed, same seeds).
Solved: greedy return >= `sweep.solved_threshold(env)` (CartPole 475, Pendulum -250).

    python scripts/pbt_rescue.py [--agent ppo|dqn|sac] [--size 8] [--lr 3e-5] [--interval 5]
        [--seeds 5] [--rule constant|kl_target|progress|hypergradient] [--beta 0.01]
        [--part both|pbt|alone]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import jax
import numpy as np
import robustness

from inject_rl import loops, sweep
from inject_rl import schedules as S
from inject_rl.agents import PBT, get, train_population
from inject_rl.agents._train import evaluate_params

ENVS = {"ppo": "phys2d/CartPole-v1", "dqn": "phys2d/CartPole-v1", "sac": "phys2d/Pendulum-v0"}
_BETA = 0.01  # schedules.hypergradient's default, as robustness.py's rule


def _optimizer(agent, setup, rule: str, beta: float):
    """`Config -> optimizer` for the rule, each member's rates starting at the Config's."""
    if rule == "constant":
        make = setup.constant
    elif rule == "hypergradient" and beta != _BETA:  # PPO only (checked in main)
        make = lambda c: dataclasses.replace(  # noqa: E731
            c, learning_rate=S.hypergradient(c.lr_init, beta=beta)
        )
    else:
        make = setup.rules[rule]

    def build(c):
        c = make(c)
        if robustness._reads_update_cos(c, agent):
            return setup.aligned(c)
        return agent.default_optimizer(c)

    return build


def _run(agent, setup, cfg, args, seeds, size, pbt):
    """Trains `len(seeds)` groups of `size` members; per group (greedy return, rate series)."""
    values = {"seed": [s * 100 + m for s in seeds for m in range(size)]}
    t = time.perf_counter()
    res = train_population(
        agent, cfg, values=values, pbt=pbt, optimizer=_optimizer(agent, setup, args.rule, args.beta)
    )
    score = np.asarray(loops.first_replica(res.state).score).reshape(len(seeds), size)
    out = []
    for g in range(len(seeds)):
        best = g * size + int(np.argmax(np.where(np.isfinite(score[g]), score[g], -np.inf)))
        ret = evaluate_params(agent, res.member_config(best), res.member_params(best), 20, 0)
        out.append((best - g * size, ret, res.metrics[setup.lr_metric][:, best]))
    print(
        f"  ({len(seeds) * size} members in {time.perf_counter() - t:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="ppo", choices=sorted(ENVS))
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--lr", type=float, help="start rate (default: ppo 3e-5, else grid's lowest)")
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument(
        "--rule", default="constant", choices=("constant", "kl_target", "progress", "hypergradient")
    )
    ap.add_argument("--kl", action="store_true", help="the same as --rule kl_target")
    ap.add_argument("--beta", type=float, default=_BETA, help="hypergradient's beta (PPO only)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--steps", type=int, help="env steps per member (default: ppo 1e5, else preset)"
    )
    ap.add_argument(
        "--part", default="both", choices=("both", "pbt", "alone"), help="PBT, the rule alone, both"
    )
    args = ap.parse_args()
    if args.kl:
        args.rule = "kl_target"
    agent = get(args.agent)
    setup = robustness.SETUPS[args.agent](agent)
    if args.rule != "constant" and args.rule not in setup.rules:
        ap.error(
            f"--rule {args.rule} is not one of {args.agent}'s: constant, {', '.join(setup.rules)}"
        )
    if args.beta != _BETA and args.agent != "ppo":
        ap.error("--beta is for ppo only (robustness.py's hypergradient rule uses the default)")
    env = ENVS[args.agent]
    steps = args.steps or (100_000 if args.agent == "ppo" else None)
    preset = agent.config_for(env, **({} if steps is None else {"total_steps": steps}))
    if args.lr is None:
        args.lr = 3e-5 if args.agent == "ppo" else robustness.grid(setup.preset_lr(preset), 4)[0]
    cfg = agent.config_for(env, total_steps=preset.total_steps, **setup.fields(preset, args.lr))
    threshold = sweep.solved_threshold(env)
    seeds = range(args.seeds)
    print(
        f"{' '.join(sys.argv)}; {args.agent} on {env}, start rate {args.lr:.3g} "
        f"({setup.fields(preset, args.lr)}), {cfg.total_steps:,} env steps per member, PBT on "
        f"{setup.pbt}, solved >= {threshold}; jax {jax.__version__}",
        flush=True,
    )
    if args.part in ("both", "pbt"):
        pbt = PBT(setup.pbt, interval=args.interval, perturb=(0.5, 2.0), groups=args.seeds)
        groups = _run(agent, setup, cfg, args, seeds, args.size, pbt)
        for seed, (best, ret, lr) in zip(seeds, groups, strict=True):
            print(
                f"seed {seed}: best member {best}, greedy {ret:.1f}, its rate q25/50/75 "
                f"{np.quantile(lr, [0.25, 0.5, 0.75]).round(7).tolist()}, final {lr[-1]:.2g}",
                flush=True,
            )
        solved = sum(ret >= threshold for _, ret, _ in groups)
        print(
            f"PBT ({args.size} members, {args.rule}): {solved} of {args.seeds} seeds >= {threshold}"
        )
    if args.part in ("both", "alone"):
        alone = _run(agent, setup, cfg, args, seeds, 1, None)
        for seed, (_, ret, lr) in zip(seeds, alone, strict=True):
            print(
                f"without PBT, seed {seed}: greedy {ret:.1f}, final rate {lr[-1]:.2g}", flush=True
            )
        solved = sum(ret >= threshold for _, ret, _ in alone)
        print(f"without PBT ({args.rule}): {solved} of {args.seeds} seeds >= {threshold}")


if __name__ == "__main__":
    main()
