"""`inject-rl eval`: the return of every greedy episode, and videos of episodes.

The episodes are those of `Policy.evaluate` (the same env seeds and keys, so their mean is the
mean it returns; `loops.evaluate_policy_returns` and `loops.evaluate_host_policy_returns`):
in-graph for a `phys2d/*` run, on host envs otherwise (envpool's for an `envpool/*` run).
Videos are recorded with gymnasium's `RecordVideo` (moviepy writes the mp4) on a host env
rendering `rgb_array` frames: the run's own env, or for a `phys2d/*` (or `envpool/*`) run the
gymnasium env of the same name (`host_env_id`), since the functional JAX envs are stepped
in-graph and envpool's envs draw no gymnasium frames.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from inject_rl import envs, loops

VIDEO_EXTRA = "pip install 'inject-rl[video]'"


def episode_returns(policy: Any, episodes: int, seed: int) -> np.ndarray:
    """The undiscounted return of each of `episodes` greedy episodes, float64 `[episodes]`.

    Args:
      policy: an `inject_rl.agents.Policy` (e.g. `load_policy(run_dir)`).
      episodes: episodes, one per env, run in parallel.
      seed: in-graph: the PRNG key's seed; host envs: env `i` is reset with `seed + i`.
    """
    cfg, agent = policy.config, policy.agent
    env = envs.make(cfg.env_id) if envs.is_jax_env(cfg.env_id) else envs.host_spaces(cfg.env_id)
    torso = (policy.network or agent.network)(cfg, env.obs_shape)
    greedy = agent.policy(cfg, env, torso).greedy
    if envs.is_jax_env(cfg.env_id):
        fn = jax.jit(
            lambda p, k: loops.evaluate_policy_returns(env, lambda obs: greedy(p, obs), episodes, k)
        )
        return np.asarray(fn(policy.params, jax.random.key(seed)), np.float64)
    act = jax.jit(greedy)
    return loops.evaluate_host_policy_returns(
        cfg.env_id, lambda obs: act(policy.params, obs), episodes, seed
    )


def host_env_id(env_id: str) -> str:
    """The host gymnasium id that films a run on `env_id`: itself, or for an in-graph id the
    id of the same name without the namespace, the same version if registered, else the newest
    (`phys2d/CartPole-v1` -> `CartPole-v1`, `phys2d/Pendulum-v0` -> `Pendulum-v1`); for an
    envpool id the gymnasium id of its task (`envpool/CartPole-v1` -> `CartPole-v1`).

    Raises:
      ValueError: an in-graph or envpool id with no gymnasium env of its name.

    >>> host_env_id("phys2d/CartPole-v1"), host_env_id("phys2d/Pendulum-v0")
    ('CartPole-v1', 'Pendulum-v1')
    >>> host_env_id("envpool/CartPole-v1")
    'CartPole-v1'
    """
    from gymnasium.envs.registration import find_highest_version, parse_env_id, registry

    if env_id.startswith("brax/"):
        raise ValueError(
            f"--video: {env_id} cannot be filmed (brax envs have no gymnasium renderer)"
        )

    if envs.is_envpool_id(env_id):
        # envpool draws no gymnasium frames: film the gymnasium env of the task's name, whose
        # spaces `record_videos` checks (envpool's Atari frames are preprocessed: none match).
        name = env_id[len(envs.ENVPOOL_PREFIX) :]
        if name not in registry:
            raise ValueError(
                f"--video: {env_id} runs on envpool, which films nothing here, and no "
                f"gymnasium env {name} draws it"
            )
        return name
    if not envs.is_jax_env(env_id):
        return env_id

    _, name, version = parse_env_id(env_id)
    if f"{name}-v{version}" in registry:
        return f"{name}-v{version}"
    newest = find_highest_version(None, name)
    if newest is None:
        raise ValueError(f"--video: {env_id} is stepped in-graph and no host env {name} draws it")
    return f"{name}-v{newest}"


def _same_spaces(a: Any, b: Any) -> bool:
    """Whether a policy of the spaces `a` acts in `b` (same observation shape, same actions)."""
    if a.observation_space.shape != b.observation_space.shape:
        return False
    x, y = a.action_space, b.action_space
    return type(x) is type(y) and x.shape == y.shape and getattr(x, "n", 0) == getattr(y, "n", 0)


def open_video_env(env_id: str) -> Any:
    """The host env filming a run on `env_id`, one frame already drawn (so a missing renderer
    is found before anything is written).

    Raises:
      ValueError: moviepy or the env's renderer (pygame for classic control) is missing, or
        no host env matches an in-graph id (one line).
    """
    import gymnasium

    # Frames are drawn off screen (`rgb_array`), but pygame-based renderers initialise SDL's
    # display (and `close` quits it), which without a display server prints an error line
    # ("XDG_RUNTIME_DIR is invalid"). SDL's dummy display draws the same frames; a user's own
    # SDL_VIDEODRIVER is kept.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        import moviepy  # noqa: F401 - RecordVideo writes the mp4 with it
    except ImportError:
        raise ValueError(f"--video needs moviepy: {VIDEO_EXTRA}") from None
    host = host_env_id(env_id)
    try:
        env = gymnasium.make(host, render_mode="rgb_array")
    except gymnasium.error.Error as e:
        raise ValueError(f"--video: cannot make {host}: {e}") from None
    try:
        env.reset(seed=0)
        env.render()
    except gymnasium.error.DependencyNotInstalled as e:
        env.close()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"--video: {host} cannot render ({first}); {VIDEO_EXTRA}") from None
    return env


def record_videos(policy: Any, directory: str | Path, episodes: int, seed: int) -> list[Path]:
    """Films `episodes` greedy episodes of `policy` into `directory`; returns the new files.

    Episode `i` is reset with `seed + i` on the host env (`host_env_id`): for a `phys2d/*` run
    these are other episodes than the in-graph ones `episode_returns` evaluates.

    Raises:
      ValueError: see `open_video_env`; or the host env's spaces differ from the run's.
    """
    from gymnasium.wrappers import RecordVideo

    env = open_video_env(policy.config.env_id)
    if not _same_spaces(policy, env):
        env.close()
        raise ValueError(
            f"--video: {env.spec.id} has other spaces ({env.observation_space}, "
            f"{env.action_space}) than {policy.config.env_id}"
        )
    directory = Path(directory)
    prefix = f"{policy.agent.name}-{env.spec.id}-seed{seed}"
    with warnings.catch_warnings():  # RecordVideo warns about any existing directory
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
        env = RecordVideo(
            env, str(directory), episode_trigger=lambda _: True, name_prefix=prefix,
            disable_logger=True,
        )  # fmt: skip
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(policy.act(obs))
                done = terminated or truncated
    finally:
        env.close()
    # RecordVideo's names: `<prefix>-episode-<i>.mp4` (an earlier video of that name is replaced).
    return [directory / f"{prefix}-episode-{i}.mp4" for i in range(episodes)]
