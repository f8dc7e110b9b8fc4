"""Greedy evaluation on host envs: the sebulba counterpart of `evaluate_policy`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from inject_rl.envs import host_env


def evaluate_host_policy(
    env_id: str,
    policy: Callable[[np.ndarray], Any],
    episodes: int,
    seed: int,
    *,
    env_kwargs: dict[str, Any] | None = None,
) -> float:
    """Mean undiscounted return of the first episode of `episodes` parallel host envs.

    Args:
      env_id: a gymnasium id, "module:Env-v0" or "envpool/<TaskId>" (must have a time
        limit); stepped on gymnasium's sync vector env, or envpool's (`inject_rl.envs.host_env`).
      policy: deterministic `obs [B, *obs] -> action [B, ...]` (e.g. a jitted greedy policy);
        `obs` are the host env's float32 network inputs (its `ObsPreprocessor`'s, as in
        training).
      episodes: number of envs, one episode each.
      seed: env `i` is reset with `seed + i`.
      env_kwargs: passed to every env's constructor.

    Returns:
      The mean return.

    Raises:
      ValueError: the env has no time limit.
    """
    return float(evaluate_host_policy_returns(env_id, policy, episodes, seed, env_kwargs).mean())


def evaluate_host_policy_returns(
    env_id: str,
    policy: Callable[[np.ndarray], Any],
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> np.ndarray:
    """The undiscounted return of the first episode of each of `episodes` parallel host envs,
    float64 `[episodes]` (arguments as `evaluate_host_policy`'s).

    Raises:
      ValueError: the env has no time limit.
    """
    with host_env(env_id, episodes, **(env_kwargs or {})) as env:
        if env.max_episode_steps is None:
            raise ValueError(f"{env_id}: evaluation needs a time limit, got max_episode_steps=None")
        obs = env.reset(seed=seed)
        ret = np.zeros(episodes, np.float64)
        alive = np.ones(episodes, bool)
        for _ in range(env.max_episode_steps):
            ts = env.step(np.asarray(policy(obs)))
            ret += np.where(alive, ts.reward, 0.0)
            alive &= ~ts.done
            if not alive.any():
                break
            obs = ts.obs
    return ret
