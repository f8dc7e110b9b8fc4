"""Learning curves on MinAtar Breakout (issue 13): inject-rl PPO and DQN vs stable-baselines3's,
with the same small CNN on both sides.

The env is gymnasium's `MinAtar/Breakout-v1` (extra `minatar`; 10x10x4 bool frames, 3
actions, no time limit), on our host loop (gymnasium sync vector envs). Both sides get the same
network: our small-frame torso (`networks.ConvTorso` below 36 pixels a side: one 3x3
convolution of 16 channels, ReLU) then one 128-unit ReLU layer, and in SB3
`_peers.small_frame_cnn()` as `features_extractor_class` with `net_arch` [128] and
`activation_fn=nn.ReLU`. PPO: separate actor and critic stacks on both sides, as ours
(`share_features_extractor=False`).

Ours is `config_for(env)` when the agent has a preset for the env; otherwise these untuned
starting layouts (the caption says which), mirrored in SB3:

* PPO (`PPO_MINATAR`, from purejaxrl's MinAtar PPO scaled to 8 envs): 8 envs x 128 steps, 4
  epochs of 8 minibatches (128 samples), gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01, value
  0.5, gradient clip 0.5; ours with the default `kl_target` learning rate from 5e-4 (target
  0.02), SB3 with a constant 5e-4.
* DQN (`DQN_MINATAR`, from MinAtar's DQN baseline, Young & Tian 2019, at 0.25 learner steps
  per env step): 4 envs, 8 steps each then 8 learner steps of 32 transitions, replay 1e5,
  learning starts at 5,000 env steps, target copied every 1,000 env steps, epsilon 1 -> 0.1 over
  the first 1e5 env steps (the fraction `min(1, 1e5 / steps)` of the run), Adam 2.5e-4 constant,
  gradient clip 10, gamma 0.99, 1-step returns. Ours is double DQN (rlax), SB3's DQN is not.
  While writing this (2 loaded cores, 6,400 steps) our DQN trained 6.4x slower with this 1e5
  replay than with 1e4 (every host-loop call copied the whole buffer), and our PPO learner was
  bound by XLA's slow CPU convolution inside loops; both are fixed in the library (the learner
  state is donated; `agents.networks.Conv2D` computes convolutions as patches on CPU).

Reported, per run: the mean training return of the episodes that ended in each of `--points`
equal parts of the budget (ours: the per-iteration means weighted by their episode counts; SB3:
its Monitor's episodes), the final policy's mean greedy return over `--episodes` episodes
(fresh envs seeded 1000 + seed + i, capped at `--eval-cap` steps each, the same evaluator for
both sides), wall seconds to train and env steps per second. Cells are the mean over seeds with
(min, max); a part with no ended episode is "—". Nothing estimated.

    python scripts/minatar_curves.py [--algo ppo,dqn] [--env MinAtar/Breakout-v1]
        [--steps 500000] [--seeds 0 1 2] [--points 20] [--episodes 20] [--only ours|sb3]
        [--json curves.json] [--torch-threads N]

Needs the `minatar` extra, and the `peers` extra for SB3 (pip install -e ".[peers]").
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from _peers import (
    caption,
    episode_log,
    iterations_per_call,
    sb3_ready,
    small_frame_cnn,
    torch_threads,
)

HIDDEN = (128,)

PPO_MINATAR: dict[str, Any] = dict(
    num_envs=8,
    rollout_len=128,
    epochs=4,
    num_minibatches=8,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    lr_init=5e-4,
    kl_target=0.02,
    hidden=HIDDEN,
)

DQN_MINATAR: dict[str, Any] = dict(
    num_envs=4,
    train_every=8,
    gradient_steps=8,
    batch_size=32,
    buffer_size=100_000,
    learning_starts=5_000,
    target_update_every=250,  # learner steps: 1,000 env steps at 0.25 learner steps per env step
    target_tau=1.0,
    learning_rate=2.5e-4,
    max_grad_norm=10.0,
    gamma=0.99,
    n_step=1,
    epsilon_start=1.0,
    epsilon_end=0.1,
    hidden=HIDDEN,
    eval_every=0,  # the final params, no best-params keeping
)
EXPLORATION_STEPS = 100_000


def our_config(algo: str, env_id: str, steps: int, seed: int) -> tuple[Any, str]:
    from inject_rl.agents import dqn, ppo

    agent = ppo if algo == "ppo" else dqn
    if env_id in agent.PRESETS:
        return agent.config_for(env_id, seed=seed, total_steps=steps), f"{algo}.config_for preset"
    layout = dict(PPO_MINATAR if algo == "ppo" else DQN_MINATAR)
    per_iteration = layout["num_envs"] * layout.get("rollout_len", layout.get("train_every"))
    # DQN: 50 iterations (1,600 env steps) per host call. Chosen when every host-loop call
    # copied the whole 1e5 replay (128 env steps/s at 10 per call, 2 loaded cores); the learner
    # state is donated since, so the count matters less; kept so the figure's layout is fixed.
    most = 10 if algo == "ppo" else 50
    layout["iterations_per_call"] = iterations_per_call(steps, per_iteration, most)
    if algo == "dqn":
        layout["epsilon_fraction"] = min(1.0, EXPLORATION_STEPS / steps)
    cfg = agent.Config(env_id=env_id, total_steps=steps, seed=seed, **layout)
    name = "PPO_MINATAR" if algo == "ppo" else "DQN_MINATAR"
    return cfg, f"no {env_id} preset in {algo}.PRESETS: the untuned {name} layout"


def greedy_return(act, env_id: str, episodes: int, seed: int, cap: int) -> tuple[float, int]:
    """(mean return, episodes cut at `cap` steps) of `act(obs) -> action` on fresh envs."""
    import gymnasium as gym

    from inject_rl import envs

    envs.spec(env_id)  # registers MinAtar's ids
    env = gym.make(env_id, max_episode_steps=cap)
    returns, capped = [], 0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, r, terminated, truncated, _ = env.step(act(obs))
            total += float(r)
            done = terminated or truncated
        capped += int(truncated and not terminated)
        returns.append(total)
    env.close()
    return float(np.mean(returns)), capped


def _binned(steps: np.ndarray, returns: np.ndarray, weights: np.ndarray, budget: int, points: int):
    """Weighted mean return per equal part of `budget` (None where no episode ended); steps
    past the budget (a run rounded up to whole host calls) count in the last part."""
    steps = np.minimum(steps, budget)
    edges = np.linspace(0, budget, points + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (steps > lo) & (steps <= hi) & np.isfinite(returns) & (weights > 0)
        w = weights[inside]
        out.append(float(np.sum(returns[inside] * w) / np.sum(w)) if w.size else None)
    return out


def run_ours(algo, env_id, steps, seed, points, episodes, cap) -> dict[str, Any]:
    from inject_rl.agents import dqn, ppo

    agent = ppo if algo == "ppo" else dqn
    cfg, how = our_config(algo, env_id, steps, seed)
    t = time.perf_counter()
    res = agent.train(cfg)
    wall = time.perf_counter() - t
    m = res.metrics
    step = np.asarray(m["step"], np.float64).reshape(-1)
    ret = np.asarray(m["episode_return"], np.float64).reshape(-1)
    count = np.asarray(m.get("episode_count", np.isfinite(ret)), np.float64).reshape(-1)
    policy = res.policy()
    final, capped = greedy_return(policy.act, env_id, episodes, 1000 + seed, cap)
    return dict(
        steps=int(step[-1]),
        wall=wall,
        compile=res.compile_s,
        rate=step[-1] / res.train_s,
        curve=_binned(step, ret, count, steps, points),
        final=final,
        capped=capped,
        how=how,
    )


def _sb3_model(algo: str, env_id: str, steps: int, seed: int):
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.env_util import make_vec_env

    from inject_rl import envs

    envs.spec(env_id)  # registers MinAtar's ids
    extractor = dict(features_extractor_class=small_frame_cnn(), activation_fn=torch.nn.ReLU)
    common = dict(seed=seed, device="cpu", verbose=0)
    if algo == "ppo":
        p = PPO_MINATAR
        return PPO(
            "MlpPolicy",
            make_vec_env(env_id, n_envs=p["num_envs"], seed=seed),
            n_steps=p["rollout_len"],
            batch_size=p["num_envs"] * p["rollout_len"] // p["num_minibatches"],
            n_epochs=p["epochs"],
            gamma=p["gamma"],
            gae_lambda=p["gae_lambda"],
            clip_range=p["clip_eps"],
            ent_coef=p["ent_coef"],
            vf_coef=p["vf_coef"],
            max_grad_norm=p["max_grad_norm"],
            learning_rate=p["lr_init"],
            policy_kwargs=dict(
                extractor,
                net_arch=dict(pi=list(HIDDEN), vf=list(HIDDEN)),
                share_features_extractor=False,
            ),
            **common,
        )
    d = DQN_MINATAR
    return DQN(
        "MlpPolicy",
        make_vec_env(env_id, n_envs=d["num_envs"], seed=seed),
        train_freq=d["train_every"],  # calls of the vector env: num_envs x 8 env steps
        gradient_steps=d["gradient_steps"],
        batch_size=d["batch_size"],
        buffer_size=d["buffer_size"],
        learning_starts=d["learning_starts"],
        target_update_interval=1_000,  # env steps
        tau=d["target_tau"],
        learning_rate=d["learning_rate"],
        max_grad_norm=d["max_grad_norm"],
        gamma=d["gamma"],
        exploration_initial_eps=d["epsilon_start"],
        exploration_final_eps=d["epsilon_end"],
        exploration_fraction=min(1.0, EXPLORATION_STEPS / steps),
        policy_kwargs=dict(extractor, net_arch=list(HIDDEN)),
        **common,
    )


def run_sb3(algo, env_id, steps, seed, points, episodes, cap) -> dict[str, Any]:
    t = time.perf_counter()
    model = _sb3_model(algo, env_id, steps, seed)
    log = episode_log()
    t_learn = time.perf_counter()
    model.learn(total_timesteps=steps, callback=log)
    end = time.perf_counter()
    ep = np.asarray(log.episodes, np.float64).reshape(-1, 2)
    act = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
    final, capped = greedy_return(act, env_id, episodes, 1000 + seed, cap)
    return dict(
        steps=int(model.num_timesteps),
        wall=end - t,
        compile=None,
        rate=model.num_timesteps / (end - t_learn),
        curve=_binned(ep[:, 0], ep[:, 1], np.ones(len(ep)), steps, points),
        final=final,
        capped=capped,
        how="same small CNN, the layout above",
    )


def _cell(values: list[float | None]) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "—"
    if len(values) == 1:
        return f"{v[0]:.2f}"
    lost = f"; {len(values) - len(v)} seed(s) none" if len(v) < len(values) else ""
    return f"{np.mean(v):.2f} ({min(v):.2f}, {max(v):.2f}{lost})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo,dqn", help="comma-separated: ppo, dqn")
    parser.add_argument("--env", default="MinAtar/Breakout-v1")
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--points", type=int, default=20, help="curve points (parts of budget)")
    parser.add_argument("--episodes", type=int, default=20, help="final greedy episodes")
    parser.add_argument("--eval-cap", type=int, default=10_000, help="steps per greedy episode")
    parser.add_argument("--only", choices=("ours", "sb3"), help="run one side only")
    parser.add_argument("--json", help="also write every run's curve to this file")
    parser.add_argument(
        "--torch-threads", type=int, help="SB3's torch threads (default: torch's, one per core)"
    )
    args = parser.parse_args()
    algos = args.algo.split(",")
    if set(algos) - {"ppo", "dqn"}:
        parser.error(f"--algo takes ppo and/or dqn, got {args.algo!r}")
    if min(args.steps, args.points, args.episodes, args.eval_cap) < 1:
        parser.error("--steps, --points, --episodes and --eval-cap must be >= 1")
    sides = [s for s in ("ours", "sb3") if args.only in (None, s)]
    missing = sb3_ready() if "sb3" in sides else None
    if missing:
        sides.remove("sb3")
    note = torch_threads(args.torch_threads) if "sb3" in sides else ""
    print(caption(("stable-baselines3", "torch", "MinAtar"), note) + "\n")
    if missing:
        print(missing + "\n")

    print(
        "| run | seed | env steps | wall s (to train) | compile s | training steps/s | "
        "final greedy return | greedy episodes capped |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    runs: dict[str, list[dict[str, Any]]] = {}
    hows: set[str] = set()
    for algo in algos:
        for seed in args.seeds:
            for side in sides:
                fn = run_ours if side == "ours" else run_sb3
                r = fn(algo, args.env, args.steps, seed, args.points, args.episodes, args.eval_cap)
                label = f"{'inject-rl' if side == 'ours' else 'stable-baselines3'} {algo.upper()}"
                hows.add(f"{label}: {r['how']}")
                runs.setdefault(label, []).append(dict(r, seed=seed))
                compile_s = "—" if r["compile"] is None else f"{r['compile']:.1f}"
                print(
                    f"| {label} | {seed} | {r['steps']} | {r['wall']:.1f} | {compile_s} | "
                    f"{r['rate']:,.0f} | {r['final']:.2f} | {r['capped']} of {args.episodes} |",
                    flush=True,
                )
    print("\n" + "; ".join(sorted(hows)) + "\n")

    labels = list(runs)
    print(f"Mean training return per part of the budget ({args.env}; mean over seeds (min, max))\n")
    print("| env steps up to | " + " | ".join(labels) + " |")
    print("|---:|" + "---:|" * len(labels))
    edges = np.linspace(0, args.steps, args.points + 1)[1:]
    for i, hi in enumerate(edges):
        cells = [_cell([r["curve"][i] for r in runs[label]]) for label in labels]
        print(f"| {hi:,.0f} | " + " | ".join(cells) + " |")
    finals = [_cell([r["final"] for r in runs[label]]) for label in labels]
    print("| final greedy | " + " | ".join(finals) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"edges": edges.tolist(), "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
