"""A trained policy to load and act with on numpy observations (stable-baselines3's `predict`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from inject_rl.agents._contract import Agent


class Policy:
    """Acts with trained params on observations of the env's observation space.

    >>> from inject_rl.agents import load_policy             # doctest: +SKIP
    >>> policy = load_policy("runs/ppo-CartPole-v1-s0")      # doctest: +SKIP
    >>> policy.act(obs)              # one observation -> one action    # doctest: +SKIP
    >>> policy.act(batch)            # [B, *obs] -> [B, ...] actions   # doctest: +SKIP

    It carries everything acting needs (the agent's acting functions, the params, the spaces),
    so the run directory is not read again.
    """

    def __init__(self, agent: Agent, config: Any, params: Any, env: Any, network=None):
        from inject_rl import envs

        agent.check_env(env)
        self.agent, self.config, self.params, self.network = agent, config, params, network
        self.observation_space, self.action_space = env.observation_space, env.action_space
        # The preprocessing of the host envs the policy was trained on (`HostEnv`), here on
        # the observations a user passes.
        self._preprocess = envs.ObsPreprocessor(env.observation_space)
        self._obs_shape = tuple(env.obs_shape)
        if self._preprocess.shape != self._obs_shape:
            raise ValueError(
                f"{getattr(env, 'id', 'the env')}: network inputs of shape {self._obs_shape}, "
                f"but {env.observation_space} preprocesses to {self._preprocess.shape}"
            )
        kind = envs.action_kind(env.action_space)
        self._discrete = kind == envs.DISCRETE
        box = kind in (envs.CONTINUOUS, envs.UNBOUNDED)
        self._bounds = (env.action_low, env.action_high) if box else None
        acting = agent.policy(config, env, (network or agent.network)(config, env.obs_shape))
        self._greedy = jax.jit(acting.greedy)
        self._sample = jax.jit(acting.sample)
        self._key = jax.random.key(config.seed)

    @classmethod
    def of(cls, agent: Agent, config: Any, params: Any, network=None) -> Policy:
        """The policy of `params` trained by `agent` with `config` on `config.env_id`."""
        from inject_rl.agents._train import spaces

        if agent is None:
            raise ValueError("this result names no agent; use inject_rl.agents.Policy(agent, ...)")
        return cls(agent, config, params, spaces(config.env_id), network)

    def act(self, obs: Any, *, deterministic: bool = True, seed: int | None = None) -> np.ndarray:
        """Actions for one observation of the observation space or a batch of them.

        Observations are preprocessed as the host envs of training preprocessed them
        (`inject_rl.envs.ObsPreprocessor`): one-hot for `Discrete`, `Dict`/`Tuple` flattened.

        Args:
          obs: one observation as the env returns it (an array, an int for `Discrete`, a dict
            for `Dict`, a tuple for `Tuple`), or a batch: the same with a leading `[B]` axis on
            every array.
          deterministic: the greedy action (argmax, or the mean action); False samples.
          seed: when sampling, restarts this policy's random stream from `seed` (None: continue
            the stream started from the run's seed).

        Returns:
          numpy actions: one (a scalar for a `Discrete` space, an array of the space's shape
          for `MultiDiscrete` and `Box`) or `[B, ...]`; `Box` actions are clipped to the
          space's bounds.

        Raises:
          ValueError: an observation of the wrong shape or structure.
        """
        x, single = self._preprocess.one_or_batch(obs)
        if deterministic:
            action = self._greedy(self.params, x)
        else:
            if seed is not None:
                self._key = jax.random.key(seed)
            self._key, key = jax.random.split(self._key)
            action = self._sample(self.params, x, key)
        action = np.asarray(action)
        if self._bounds is not None:
            action = np.clip(action, *self._bounds).astype(self.action_space.dtype)
        elif not self._discrete:  # MultiDiscrete: the space's integer dtype
            action = action.astype(self.action_space.dtype)
        return action[0] if single else action

    __call__ = act

    def evaluate(self, *, episodes: int = 20, seed: int = 0) -> float:
        """Mean return of `episodes` greedy episodes on the run's env (in-graph for `phys2d/*`,
        else host envs; episode `i` seeded from `seed`)."""
        from inject_rl.agents._train import evaluate_params

        return evaluate_params(self.agent, self.config, self.params, episodes, seed, self.network)


def load_policy(run_dir: str | Path, *, network: Callable | None = None) -> Policy:
    """The final policy of an `inject-rl train` run directory.

    Args:
      run_dir: the run directory (holds config.json and params/).
      network: the network factory the run was trained with, if not the agent's default.

    Raises:
      ValueError: not a finished run directory, or an unknown agent.
    """
    from inject_rl import runs
    from inject_rl.agents import get

    run_dir = Path(run_dir)
    record = runs.read_json(run_dir / runs.CONFIG)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"{run_dir} is not a run directory (no {runs.CONFIG} with a config)")
    agent = get(str(record.get("agent")))
    config = agent.config(**agent.config_from_json(record["config"], str(run_dir)))
    params = runs.load_params(run_dir / runs.PARAMS)
    return Policy.of(agent, config, params, network=network)
