"""MuJoCo side by side in one run (issue 13): inject-rl SAC / PPO vs stable-baselines3.

**SAC** (`--algo sac`, default env HalfCheetah-v5, 1e5 env steps): ours is
`sac.config_for(env)` when `sac.PRESETS` has a preset for the env; otherwise (no preset yet, and
the caption says so) SB3's SAC defaults restated as our Config (`SB3_SAC_DEFAULTS`: 256x256 ReLU
networks, Adam 3e-4 for actor, critics and temperature, batch 256, buffer 1e6 (or the run's
steps if fewer: never full either way), tau 0.005, gamma 0.99, initial temperature 1, target
entropy -dim(A), one learner step per env step), with rl-baselines3-zoo's `learning_starts:
10000`. Our env steps come 8 per env from 4 envs and are followed by 32 learner steps (SB3: one
env, one learner step after each env step). SB3 is `SAC("MlpPolicy", env,
learning_starts=10000)` with everything else at its defaults: rl-baselines3-zoo's
hyperparams/sac.yml for HalfCheetah-v3 (commit c94924e) is only `n_timesteps: 1e6, policy:
'MlpPolicy', learning_starts: 10000`. The issue's goal: match or beat SB3's return in under a
fifth of its wall time.

**PPO** (`--algo ppo`, default envs Hopper-v5 and HalfCheetah-v5, 1e6 env steps): ours is
`ppo.config_for(env)` when `ppo.PRESETS` has the env; otherwise `PPO_MUJOCO` (8 envs x 256
steps, 10 epochs of 8 minibatches, 64x64 tanh networks, gamma 0.99, lambda 0.95, the default
`kl_target` learning rate from 3e-4 with target 0.01, `normalize_obs` and `normalize_reward`),
an untuned starting layout, named as such in the caption. SB3 is PPO with rl-baselines3-zoo's
tuned hyperparameters from hyperparams/ppo.yml (commit 208b6fd, keys HalfCheetah-v4 and
Hopper-v4, run here on the v5 envs; `RL_ZOO_PPO`): both `normalize: true` (VecNormalize of
observations and rewards, its gamma the algorithm's, as the zoo sets it), `n_envs: 1`,
`n_steps: 512`, policy 'MlpPolicy' with `log_std_init=-2, ortho_init=False,
activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256])`, and

    HalfCheetah: batch_size 64, gamma 0.98, learning_rate 2.0633e-05, ent_coef 0.000401762,
                 clip_range 0.1, n_epochs 20, gae_lambda 0.92, max_grad_norm 0.8, vf_coef 0.58096
    Hopper:      batch_size 32, gamma 0.999, learning_rate 9.80828e-05, ent_coef 0.00229519,
                 clip_range 0.2, n_epochs 5, gae_lambda 0.99, max_grad_norm 0.7, vf_coef 0.835671

(the zoo's own benchmark, on v3 envs with one run each, reports HalfCheetah 5,819 and Hopper
2,410 at 1e6 steps: a reference only). SB3 is greedy-evaluated on VecNormalize's frozen
observation statistics, rewards unnormalised.

Per run: env steps, wall seconds to train (model construction, compile and training; the
evaluation excluded), our compile seconds, env steps per second of training (ours: compile
excluded; SB3: `learn()`), and the mean greedy return of `--episodes` episodes on fresh envs
seeded 1000 + seed. Then per side the mean over seeds and the ratio of SB3's mean wall time to
ours. Same seeds on both sides; nothing estimated: a side not run prints no numbers.

    python scripts/mujoco_peers.py --algo sac [--env HalfCheetah-v5] [--steps 100000]
    python scripts/mujoco_peers.py --algo ppo [--env Hopper-v5,HalfCheetah-v5] [--steps 1000000]
        [--seeds 0 1 2] [--episodes 10] [--only ours|sb3] [--envpool] [--torch-threads N]
        [--ours-layout untuned|zoo|zoo-constant]

`--envpool` runs our side on `envpool/<env>` (C++ envs) instead of gymnasium's.
`--ours-layout zoo` (PPO) gives our side rl-zoo's hyperparameters for the env restated as our
Config (`zoo_as_ours`) with our kl_target rate starting at the zoo's rate; `zoo-constant` holds
the zoo's rate constant (the same algorithm as SB3's up to the networks' tanh).
`--torch-threads` sets SB3's torch threads (default torch's: one per core); on a loaded machine
1 can be far faster (`_peers.torch_threads`). Run the full figure on a quiet machine.
Needs the `mujoco` extra, and the `peers` extra for SB3 (pip install -e ".[peers]").
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _peers import caption, iterations_per_call, sb3_greedy_return, sb3_ready, torch_threads

DEFAULTS = {"sac": ("HalfCheetah-v5", 100_000), "ppo": ("Hopper-v5,HalfCheetah-v5", 1_000_000)}

SB3_SAC_DEFAULTS: dict[str, Any] = dict(
    hidden=(256, 256),
    actor_lr=3e-4,
    critic_lr=3e-4,
    alpha_lr=3e-4,
    batch_size=256,
    buffer_size=1_000_000,
    learning_starts=10_000,  # rl-baselines3-zoo, sac.yml, HalfCheetah-v3
    gamma=0.99,
    tau=0.005,
    init_alpha=1.0,
    num_envs=4,
    train_every=8,
    gradient_steps=32,  # one learner step per env step, as SB3's train_freq 1, gradient_steps 1
)

PPO_MUJOCO: dict[str, Any] = dict(
    num_envs=8,
    rollout_len=256,
    epochs=10,
    num_minibatches=8,
    gamma=0.99,
    gae_lambda=0.95,
    hidden=(64, 64),
    lr_init=3e-4,
    kl_target=0.01,
    normalize_obs=True,
    normalize_reward=True,
)

_ZOO_POLICY = dict(log_std_init=-2, ortho_init=False, net_arch=dict(pi=[256, 256], vf=[256, 256]))
RL_ZOO_PPO: dict[str, dict[str, Any]] = {  # hyperparams/ppo.yml, commit 208b6fd, *-v4 keys
    "HalfCheetah": dict(
        batch_size=64,
        n_steps=512,
        gamma=0.98,
        learning_rate=2.0633e-05,
        ent_coef=0.000401762,
        clip_range=0.1,
        n_epochs=20,
        gae_lambda=0.92,
        max_grad_norm=0.8,
        vf_coef=0.58096,
    ),
    "Hopper": dict(
        batch_size=32,
        n_steps=512,
        gamma=0.999,
        learning_rate=9.80828e-05,
        ent_coef=0.00229519,
        clip_range=0.2,
        n_epochs=5,
        gae_lambda=0.99,
        max_grad_norm=0.7,
        vf_coef=0.835671,
    ),
}


def our_config(
    algo: str, env_id: str, steps: int, seed: int, layout_name: str = "untuned"
) -> tuple[Any, str]:
    """(Config, how it was chosen) for our side."""
    from inject_rl.agents import ppo, sac

    agent = sac if algo == "sac" else ppo
    base = env_id.removeprefix("envpool/")
    if env_id in agent.PRESETS or base in agent.PRESETS:
        return agent.config_for(env_id, seed=seed, total_steps=steps), f"{algo}.config_for preset"
    if algo == "sac":
        layout = dict(SB3_SAC_DEFAULTS)
        per_iteration = layout["num_envs"] * layout["train_every"]
        layout["iterations_per_call"] = iterations_per_call(steps, per_iteration, 50)
        # SB3's 1e6 buffer never fills in a shorter run: hold the run's steps instead (the
        # same transitions are replayed), not 1e6 slots that the device state carries.
        per_call = per_iteration * layout["iterations_per_call"]
        layout["buffer_size"] = min(layout["buffer_size"], -(-steps // per_call) * per_call)
        cfg = sac.Config(env_id=env_id, total_steps=steps, seed=seed, **layout)
        return cfg, f"no {base} preset in sac.PRESETS: SB3's SAC defaults as our Config"
    zoo = layout_name != "untuned"
    layout = zoo_as_ours(base, constant=layout_name == "zoo-constant") if zoo else dict(PPO_MUJOCO)
    per_iteration = layout["num_envs"] * layout["rollout_len"]
    layout["iterations_per_call"] = iterations_per_call(steps, per_iteration, 8)
    cfg = ppo.Config(env_id=env_id, total_steps=steps, seed=seed, **layout)
    if zoo:
        rule = "a constant rate" if layout_name == "zoo-constant" else "kl_target from that rate"
        return cfg, f"rl-zoo's {base} hyperparameters as our Config, {rule}"
    return cfg, f"no {base} preset in ppo.PRESETS: the untuned PPO_MUJOCO layout"


def zoo_as_ours(env_id: str, constant: bool) -> dict[str, Any]:
    """`RL_ZOO_PPO[env]` restated as our PPO Config (`--ours-layout zoo|zoo-constant`): one env
    of `n_steps`, minibatches of `batch_size`, 256x256 networks (ours tanh, the zoo's ReLU),
    `log_std_init=-2`, observation and reward normalisation; our value loss is half the
    squared error, so `vf_coef` doubles. The learning rate is the zoo's, held constant or as
    the start of our default kl_target rule (target 0.01)."""
    zoo = RL_ZOO_PPO[env_id.split("-")[0]]
    return dict(
        num_envs=1,
        rollout_len=zoo["n_steps"],
        epochs=zoo["n_epochs"],
        num_minibatches=zoo["n_steps"] // zoo["batch_size"],
        gamma=zoo["gamma"],
        gae_lambda=zoo["gae_lambda"],
        clip_eps=zoo["clip_range"],
        ent_coef=zoo["ent_coef"],
        vf_coef=2 * zoo["vf_coef"],
        max_grad_norm=zoo["max_grad_norm"],
        hidden=(256, 256),
        log_std_init=-2.0,
        normalize_obs=True,
        normalize_reward=True,
        **(
            dict(learning_rate=zoo["learning_rate"])
            if constant
            else dict(lr_init=zoo["learning_rate"], kl_target=0.01)
        ),
    )


def run_ours(
    algo: str, env_id: str, steps: int, seed: int, episodes: int, layout_name: str = "untuned"
) -> dict[str, Any]:
    from inject_rl.agents import ppo, sac

    agent = sac if algo == "sac" else ppo
    cfg, how = our_config(algo, env_id, steps, seed, layout_name)
    t = time.perf_counter()
    res = agent.train(cfg)
    wall = time.perf_counter() - t
    env_steps = int(res.metrics["step"][-1])
    return dict(
        steps=env_steps,
        wall=wall,
        compile=res.compile_s,
        rate=env_steps / res.train_s,
        ret=agent.evaluate(res, episodes=episodes, seed=1000 + seed),
        how=how,
    )


def _sb3_model(algo: str, env_id: str, seed: int):
    """The SB3 model of the docstring, on its (seeded) training env."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    if algo == "sac":
        return SAC(
            "MlpPolicy",
            gym.make(env_id),
            learning_starts=10_000,
            seed=seed,
            device="cpu",
            verbose=0,
        )
    name = env_id.split("-")[0]
    if name not in RL_ZOO_PPO:
        raise SystemExit(f"no rl-baselines3-zoo PPO hyperparameters here for {env_id}")
    settings = RL_ZOO_PPO[name]
    env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed), gamma=settings["gamma"])
    policy_kwargs = dict(_ZOO_POLICY, activation_fn=torch.nn.ReLU)
    return PPO(
        "MlpPolicy",
        env,
        seed=seed,
        device="cpu",
        verbose=0,
        policy_kwargs=policy_kwargs,
        **settings,
    )


def run_sb3(algo: str, env_id: str, steps: int, seed: int, episodes: int) -> dict[str, Any]:
    import stable_baselines3  # noqa: F401  (imports before the timer)

    t = time.perf_counter()
    model = _sb3_model(algo, env_id, seed)
    t_learn = time.perf_counter()
    model.learn(total_timesteps=steps)
    end = time.perf_counter()
    mean = sb3_greedy_return(model, env_id, seed, episodes)
    return dict(
        steps=int(model.num_timesteps),
        wall=end - t,
        compile=None,
        rate=model.num_timesteps / (end - t_learn),
        ret=float(mean),
        how="rl-baselines3-zoo",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=("sac", "ppo"), default="sac")
    parser.add_argument("--env", help="comma-separated gymnasium ids (default: per --algo)")
    parser.add_argument("--steps", type=int, help="env steps per run (sac 1e5, ppo 1e6)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10, help="greedy evaluation episodes")
    parser.add_argument("--only", choices=("ours", "sb3"), help="run one side only")
    parser.add_argument("--envpool", action="store_true", help="our side on envpool/<env>")
    parser.add_argument(
        "--ours-layout",
        choices=("untuned", "zoo", "zoo-constant"),
        default="untuned",
        help="PPO: our side in PPO_MUJOCO or in rl-zoo's hyperparameters (zoo_as_ours)",
    )
    parser.add_argument(
        "--torch-threads", type=int, help="SB3's torch threads (default: torch's, one per core)"
    )
    args = parser.parse_args()
    env_ids = (args.env or DEFAULTS[args.algo][0]).split(",")
    steps = args.steps if args.steps is not None else DEFAULTS[args.algo][1]
    if steps < 1 or args.episodes < 1:
        parser.error(f"--steps and --episodes must be >= 1, got {steps}, {args.episodes}")
    sides = [s for s in ("ours", "sb3") if args.only in (None, s)]
    missing = sb3_ready() if "sb3" in sides else None
    if missing:
        sides.remove("sb3")

    note = torch_threads(args.torch_threads) if "sb3" in sides else ""
    print(caption(("stable-baselines3", "torch", "mujoco", "envpool"), note) + "\n")
    if missing:
        print(missing + "\n")
    print(
        "| run | env | seed | env steps | wall s (to train) | compile s | "
        "training steps/s | greedy return |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    hows: set[str] = set()
    for env_id in env_ids:
        for seed in args.seeds:
            for side in sides:
                if side == "ours":
                    ours_env = ("envpool/" if args.envpool else "") + env_id
                    r = run_ours(args.algo, ours_env, steps, seed, args.episodes, args.ours_layout)
                    label = f"inject-rl {args.algo.upper()} ({ours_env})"
                else:
                    r = run_sb3(args.algo, env_id, steps, seed, args.episodes)
                    label = f"stable-baselines3 {args.algo.upper()}"
                hows.add(f"{label}: {r['how']}")
                results.setdefault((env_id, side), []).append(r)
                compile_s = "—" if r["compile"] is None else f"{r['compile']:.1f}"
                print(
                    f"| {label} | {env_id} | {seed} | {r['steps']} | {r['wall']:.1f} | "
                    f"{compile_s} | {r['rate']:,.0f} | {r['ret']:.1f} |",
                    flush=True,
                )
    print("\n" + "; ".join(sorted(hows)) + "\n")
    print("| env | run | seeds | mean greedy return (min, max) | mean wall s | SB3 wall / ours |")
    print("|---|---|---:|---:|---:|---:|")
    for env_id in env_ids:
        walls = {}
        for side in sides:
            rs = results[(env_id, side)]
            rets = [r["ret"] for r in rs]
            walls[side] = statistics.mean(r["wall"] for r in rs)
            ratio = "—"
            if side == "ours" and "sb3" in sides:
                sb3_wall = statistics.mean(r["wall"] for r in results[(env_id, "sb3")])
                ratio = f"{sb3_wall / walls[side]:.2f}x"
            print(
                f"| {env_id} | {'inject-rl' if side == 'ours' else 'stable-baselines3'} | "
                f"{len(rs)} | {statistics.mean(rets):.1f} ({min(rets):.1f}, {max(rets):.1f}) | "
                f"{walls[side]:.1f} | {ratio} |"
            )


if __name__ == "__main__":
    main()
