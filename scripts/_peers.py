"""stable-baselines3's PPO on CartPole-v1 for the side-by-side scripts (the `peers` extra)."""

from __future__ import annotations

from typing import Any


def rl_zoo_ppo(seed: int, **changes: Any):
    """SB3 PPO on 8 CartPole-v1 envs with rl-baselines3-zoo's tuned hyperparameters (n_steps
    32, batch 256, 20 epochs, gamma 0.98, gae_lambda 0.8, no entropy bonus, lr and clip linearly
    decayed from 1e-3 and 0.2), with `changes` to any of them (`net_arch`: the policy's layers).

    Raises:
      ImportError: stable-baselines3 is not installed (pip install -e ".[peers]").
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    def linear(v):
        return lambda progress_remaining: progress_remaining * v

    settings: dict[str, Any] = dict(
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
    )
    net_arch = changes.pop("net_arch", None)
    settings.update(changes)
    return PPO(
        "MlpPolicy",
        make_vec_env("CartPole-v1", n_envs=8, seed=seed),
        seed=seed,
        device="cpu",
        verbose=0,
        policy_kwargs=None if net_arch is None else {"net_arch": net_arch},
        **settings,
    )


# --- Shared by the issue-13 figure scripts (mujoco_peers, minatar_curves, bench_atari) ---------


def caption(distributions: tuple[str, ...] = (), note: str = "") -> str:
    """A table caption: the exact command, the UTC date, the machine and library versions.

    `distributions`: extra installed distributions to name (e.g. "stable-baselines3"); one
    not installed is named as such. Reads versions from package metadata (imports nothing heavy).
    `note`: appended before the command (e.g. `torch_threads`'s line).
    """
    import datetime
    import os
    import platform
    import shlex
    import subprocess
    import sys
    from importlib import metadata

    import jax

    def version(dist: str) -> str:
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            return f"{dist} not installed"

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        git = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", root, *a], capture_output=True, text=True, check=True
        ).stdout.strip()
        commit = git("rev-parse", "--short", "HEAD")
        commit += (
            " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    libs = ", ".join(version(d) for d in ("jax", "gymnasium", *distributions))
    return (
        f"_{now}; {cpu}, {os.cpu_count()} CPUs, jax on {jax.devices()[0].platform}; "
        f"inject-rl {commit}; {libs}; {note + '; ' if note else ''}"
        f"`python {shlex.join(sys.argv)}`_"
    )


def iterations_per_call(steps: int, per_iteration: int, most: int) -> int:
    """Iterations per host call, at most `most`: the largest that divides the run's iterations
    (a run rounds up to whole host calls; this way it overshoots `steps` by less than one
    iteration), unless that is under `most / 4`, then `most` (fewer host calls).

    >>> iterations_per_call(100_000, 32, 50), iterations_per_call(500_000, 1024, 10)
    (25, 3)
    """
    iterations = -(-steps // per_iteration)
    best = max(d for d in range(1, min(most, iterations) + 1) if iterations % d == 0)
    return best if best * 4 >= most else min(most, iterations)


def torch_threads(n: int | None) -> str:
    """Sets torch's intra-op threads to `n` (None: leaves torch's default, one per core) and
    returns the caption's note naming the count SB3 runs with. On a loaded machine torch's
    OpenMP threads wait for each other: a 256x256 MLP's backward pass took 145 ms with 2 threads
    and 2.5 ms with 1 on 2 cores at load average 5 (this machine, 2026-11-27)."""
    try:
        import torch
    except ImportError:
        return ""
    if n is not None:
        torch.set_num_threads(n)
    return f"torch threads {torch.get_num_threads()}" + ("" if n else " (torch's default)")


def sb3_ready() -> str | None:
    """None when stable-baselines3 and torch import, else the line to print instead of SB3's
    rows (`pip install -e '.[peers]'`)."""
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        return (
            f"stable-baselines3 side not run: {err.name} not installed (pip install -e '.[peers]')"
        )
    return None


def small_frame_cnn():
    """The SB3 `features_extractor_class` equal to inject-rl's small-frame conv torso
    (`inject_rl.agents.networks.ConvTorso` for frames under 36 pixels a side, e.g. MinAtar's
    10x10xC): one 3x3 convolution of 16 channels, stride 1, no padding, ReLU, flattened. The
    MLP layers after it are SB3's `net_arch` (with `activation_fn=nn.ReLU`, as ConvTorso's).

    Observations arrive as `[B, H, W, C]` (MinAtar's bool frames are no SB3 "image space", so
    SB3 neither transposes nor rescales them); the extractor moves channels first itself.
    """
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class SmallFrameCNN(BaseFeaturesExtractor):
        def __init__(self, observation_space, channels: int = 16):
            h, w, c = observation_space.shape
            super().__init__(observation_space, features_dim=channels * (h - 2) * (w - 2))
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(c, channels, kernel_size=3, stride=1),
                torch.nn.ReLU(),
                torch.nn.Flatten(),
            )

        def forward(self, obs):
            return self.net(obs.float().permute(0, 3, 1, 2))

    return SmallFrameCNN


def episode_log():
    """An SB3 callback whose `.episodes` lists `(env steps so far, return)` for every training
    episode, as the Monitor wrapper (which `make_vec_env` adds) reports it."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeLog(BaseCallback):
        def __init__(self):
            super().__init__()
            self.episodes: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                if "episode" in info:
                    self.episodes.append((self.num_timesteps, float(info["episode"]["r"])))
            return True

    return EpisodeLog()


def sb3_greedy_return(model: Any, env_id: str, seed: int, episodes: int) -> float:
    """Mean deterministic return of an SB3 `model` over `episodes` episodes of a fresh
    `env_id` env seeded `1000 + seed` (not the training seed). A model trained under
    VecNormalize is evaluated on its frozen observation statistics, rewards unnormalised."""
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    eval_env = DummyVecEnv([lambda: Monitor(gym.make(env_id))])
    train_norm = model.get_vec_normalize_env()
    if train_norm is not None:
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = train_norm.obs_rms.copy()
    eval_env.seed(1000 + seed)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True)
    return float(mean)
