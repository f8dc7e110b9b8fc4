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
      env_id: a gymnasium id, "module:Env-v0" or "envpool/<TaskId>"; stepped on gymnasium's
        sync vector env, or envpool's (`inject_rl.envs.host_env`).
      policy: deterministic `obs [B, *obs] -> action [B, ...]` (e.g. a jitted greedy policy);
        `obs` are the host env's float32 network inputs (its `ObsPreprocessor`'s, as in
        training).
      episodes: number of envs, one episode each.
      seed: env `i` is reset with `seed + i`.
      env_kwargs: passed to every env's constructor.

    Returns:
      The mean return.

    Raises:
      UnfinishedEvaluation: see `evaluate_host_policy_returns`.
    """
    return float(evaluate_host_policy_returns(env_id, policy, episodes, seed, env_kwargs).mean())


# The most steps an evaluation takes on an env without a time limit.
UNLIMITED_EVAL_STEPS = 100_000


class UnfinishedEvaluation(ValueError):
    """Episodes of an env without a time limit that did not end within `UNLIMITED_EVAL_STEPS`
    steps (a greedy policy walking in circles): there is no return to report."""


def evaluate_host_policy_returns(
    env_id: str,
    policy: Callable[[np.ndarray], Any],
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> np.ndarray:
    """The undiscounted return of the first episode of each of `episodes` parallel host envs,
    float64 `[episodes]` (arguments as `evaluate_host_policy`'s).

    An env without a time limit (Blackjack-v1) is stepped until every episode ended, at most
    `UNLIMITED_EVAL_STEPS` steps (a CLI run on such an env used to train to the end, then fail
    its evaluation).

    Raises:
      UnfinishedEvaluation: an env without a time limit whose episodes did not all end within
        `UNLIMITED_EVAL_STEPS` steps.
    """
    with host_env(env_id, episodes, **(env_kwargs or {})) as env:
        limit = env.max_episode_steps or UNLIMITED_EVAL_STEPS
        obs = env.reset(seed=seed)
        ret = np.zeros(episodes, np.float64)
        alive = np.ones(episodes, bool)
        for _ in range(limit):
            ts = env.step(np.asarray(policy(obs)))
            ret += np.where(alive, ts.reward, 0.0)
            alive &= ~ts.done
            if not alive.any():
                break
            obs = ts.obs
        if alive.any() and env.max_episode_steps is None:
            raise UnfinishedEvaluation(
                f"{env_id}: {int(alive.sum())} of {episodes} evaluation episodes did not end "
                f"within {UNLIMITED_EVAL_STEPS} steps, and the env has no time limit"
            )
    return ret
