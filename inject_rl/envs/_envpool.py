"""envpool's C++ vector envs as host envs: ids `envpool/<TaskId>`, same-step autoreset.

`EnvpoolEnv` returns the same `HostTimeStep`s as `HostEnv`, so the sebulba loop, every agent and
host evaluation use it unchanged (`inject_rl.envs.host_env` picks it for an `envpool/*` id).

**Autoreset.** envpool resets an env on the call *after* its episode ended, ignoring that
call's action and returning the reset observation with reward 0 (gymnasium's `NEXT_STEP`
mode). The learners assume same-step semantics (see `HostEnv`), so `step` steps every env, then
at once steps only the envs whose episode ended (`step(action, env_id)` on that subset), which
resets them: their reset observation becomes `obs`, the observation the episode reached stays
`next_obs`, and the reset call itself never becomes a transition.

**Episode statistics** are computed here from the rewards. For Atari tasks (those with
`episodic_life` in their config) the reported `episode_return` is the full game's *unclipped*
score (envpool's `info["reward"]`) and `episode_length` its agent steps over all lives, however
`reward_clip` and `episodic_life` are set: the learner sees the (possibly clipped) rewards and,
with `episodic_life=True`, a termination at every life lost, but the statistic stays the usual
Atari report. Other tasks report the sum of the rewards the learner sees.

**Observations.** A channels-first image (a rank-3 Box whose first axis is its smallest, as
envpool's Atari frames `[4, 84, 84]`: 4 stacked 84x84 grayscale frames) is transposed to
`[H, W, C]` (`[84, 84, 4]`), and `observation_space` says so, so the conv torso and
`ObsPreprocessor` (uint8 in [0, 255] scaled to [0, 1]) treat it as any other image; a policy
acting on raw envpool frames must transpose them the same way.

**Seeds.** envpool fixes seeds when an env is made (env `i` gets `seed + i`, gymnasium's rule),
so `reset(seed)` makes the pool; `reset()` without a seed resets the pool it has.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

import numpy as np

from inject_rl.envs._host import ENVPOOL_PREFIX, HostSpaces, HostTimeStep
from inject_rl.envs._spaces import ObsPreprocessor, action_kind

ENVPOOL_EXTRA = "pip install 'inject-rl[envpool]'"
# Set by `EnvpoolEnv` itself: the number of envs, their seed, and a batch of every env
# (envpool's asynchronous mode, `batch_size < num_envs`, returns whichever envs finish first).
_OWN_KWARGS = ("num_envs", "seed", "batch_size", "env_type")


def _import_envpool(env_id: str) -> Any:
    try:
        import envpool
    except ModuleNotFoundError as e:
        if e.name != "envpool":
            raise ValueError(f"{env_id}: envpool cannot be imported ({e})") from None
        raise ValueError(f"{env_id} needs the envpool package: {ENVPOOL_EXTRA}") from None
    return envpool


def _channels_first(space: Any) -> bool:
    """A rank-3 Box whose first axis is its smallest: `[C, H, W]` (envpool's Atari frames)."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Box) or len(space.shape) != 3:
        return False
    c, h, w = space.shape
    return c < h and c < w


def _to_hwc(space: Any) -> Any:
    from gymnasium import spaces

    return spaces.Box(
        np.transpose(space.low, (1, 2, 0)), np.transpose(space.high, (1, 2, 0)), dtype=space.dtype
    )


class EnvpoolEnv(HostSpaces):
    """`num_envs` copies of an envpool task, with `HostEnv`'s interface and same-step autoreset
    (see the module doc).

    Not thread-safe: one actor thread steps one `EnvpoolEnv`. Close it with `close()` (or use it
    as a context manager).

    >>> from inject_rl.envs import EnvpoolEnv
    >>> with EnvpoolEnv("envpool/CartPole-v1", 2) as env:
    ...     obs = env.reset(seed=0)
    ...     ts = env.step(np.zeros(2, np.int32))
    >>> obs.shape, ts.reward.tolist(), env.num_actions, env.max_episode_steps
    ((2, 4), [1.0, 1.0], 2, 500)
    """

    def __init__(self, env_id: str, num_envs: int, **kwargs: Any):
        """Reads the task's spaces (the pool itself is made by `reset`).

        Args:
          env_id: "envpool/<TaskId>", e.g. "envpool/CartPole-v1", "envpool/HalfCheetah-v5",
            "envpool/Pong-v5" (`envpool.list_all_envs()` lists the tasks).
          num_envs: number of copies, >= 1.
          **kwargs: envpool config values passed to `envpool.make` (e.g. `episodic_life`,
            `reward_clip`, `max_episode_steps`, `num_threads`); not `num_envs`, `seed`,
            `batch_size` or `env_type`, which this class sets.

        Raises:
          ValueError: envpool missing (naming the extra to install), an unknown task or config
            key, a bad `num_envs`, or unsupported spaces (one line).
        """
        if not isinstance(env_id, str) or not env_id.startswith(ENVPOOL_PREFIX):
            raise ValueError(f"an envpool id is {ENVPOOL_PREFIX}<TaskId>, got {env_id!r}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs=!r}")
        own = sorted(set(kwargs) & set(_OWN_KWARGS))
        if own:
            raise ValueError(f"{env_id}: {', '.join(own)} are set by EnvpoolEnv, not by kwargs")
        self._envpool = _import_envpool(env_id)
        self.task = env_id[len(ENVPOOL_PREFIX) :]
        try:
            spec = self._envpool.make_spec(self.task, **kwargs)
        except KeyError:
            close = difflib.get_close_matches(self.task, self._envpool.list_all_envs(), n=3)
            hint = (
                f"; did you mean {', '.join(ENVPOOL_PREFIX + c for c in close)}?" if close else ""
            )
            raise ValueError(
                f"unknown envpool task {self.task!r} in {env_id!r} (envpool.list_all_envs() "
                f"lists them){hint}"
            ) from None
        except TypeError as e:  # an unknown config key
            raise ValueError(f"{env_id}: bad envpool config ({e})") from None
        with warnings.catch_warnings():  # float64 bounds cast to float32 by gymnasium's Box
            warnings.simplefilter("ignore", UserWarning)
            obs_space = spec.gymnasium_observation_space
            self.action_space = spec.gymnasium_action_space
        self._transpose = _channels_first(obs_space)
        self.observation_space = _to_hwc(obs_space) if self._transpose else obs_space
        self.id = env_id
        self.num_envs = num_envs
        config = spec.config._asdict()
        self.max_episode_steps = int(config["max_episode_steps"])
        self._kwargs = kwargs
        # Atari: the statistic is the full game's unclipped score (see the module doc).
        self._atari = "episodic_life" in config
        self._pool: Any = None
        self._episode_return = np.zeros(num_envs, np.float64)
        self._episode_length = np.zeros(num_envs, np.int64)
        self.closed = False
        try:
            self.obs_preprocessor = ObsPreprocessor(self.observation_space)
            self.action_kind = action_kind(self.action_space)
        except ValueError as e:
            raise ValueError(f"{env_id}: {e}") from None
        self._noop = np.zeros((num_envs, *self.action_shape), self.action_space.dtype)

    def __repr__(self) -> str:
        return f"EnvpoolEnv(id={self.id!r}, num_envs={self.num_envs})"

    def __enter__(self) -> EnvpoolEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _obs(self, obs: Any) -> np.ndarray:
        if self._transpose:
            obs = np.transpose(obs, (0, 2, 3, 1))
        return self.obs_preprocessor(obs)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Resets every env; env `i` is seeded with `seed + i` (a new pool is made; without a
        seed, the pool it has is reset, or one with a random seed is made).

        Returns:
          `[num_envs, *obs_shape]` float32 observations (preprocessed).
        """
        if self.closed:
            raise ValueError(f"{self.id}: the env is closed")
        if seed is not None or self._pool is None:
            if seed is None:
                seed = int(np.random.SeedSequence().generate_state(1)[0] % 2**31)
            if self._pool is not None:
                self._pool.close()
            with warnings.catch_warnings():  # as in __init__: the spaces' float64 bounds
                warnings.simplefilter("ignore", UserWarning)
                self._pool = self._envpool.make(
                    self.task,
                    env_type="gymnasium",
                    num_envs=self.num_envs,
                    seed=seed,
                    **self._kwargs,
                )
        obs, info = self._pool.reset()
        order = np.argsort(info["env_id"])
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        return self._obs(_take(obs, order))

    def step(self, action: Any) -> HostTimeStep:
        """Steps every env once; ended episodes are reset in the same call (see the module doc).

        Args:
          action: `[num_envs]` integers (Discrete), `[num_envs, *action_shape]` integers
            (MultiDiscrete) or floats (Box, clipped to its bounds).

        Returns:
          A `HostTimeStep`.
        """
        if self._pool is None:
            raise ValueError(f"{self.id}: call reset(seed) before step")
        action = self._checked_action(action)
        obs, reward, terminated, truncated, info = self._pool.step(action)
        order = np.argsort(info["env_id"])  # rows in env order (envpool returns them so, too)
        obs = self._obs(_take(obs, order))
        reward = np.asarray(reward, np.float32)[order]
        terminated = np.asarray(terminated, bool)[order]
        # The time limit and termination can coincide: termination wins (no bootstrap).
        truncated = np.asarray(truncated, bool)[order] & ~terminated
        done = terminated | truncated
        raw = np.asarray(info["reward"])[order] if self._atari else reward
        self._episode_return += raw
        self._episode_length += 1
        # A life lost under `episodic_life` ends the learner's episode, not the game.
        ended = done
        if self._atari:
            ended = truncated | (terminated & np.asarray(info["terminated"], bool)[order])
        next_obs = obs
        if done.any():
            ids = np.flatnonzero(done).astype(np.int32)
            # envpool resets an ended env on its next step (ignoring the action): do it now.
            reset_obs, *_, reset_info = self._pool.step(self._noop[: len(ids)], ids)
            obs = obs.copy()
            obs[ids] = self._obs(_take(reset_obs, np.argsort(reset_info["env_id"])))
        episode_return = np.where(ended, self._episode_return, 0.0).astype(np.float32)
        episode_length = np.where(ended, self._episode_length, 0).astype(np.int32)
        self._episode_return[ended] = 0.0
        self._episode_length[ended] = 0
        return HostTimeStep(
            obs, reward, terminated, truncated, next_obs, episode_return, episode_length
        )

    def close(self) -> None:
        """Closes the pool (idempotent)."""
        if not self.closed:
            self.closed = True
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def _take(obs: Any, order: np.ndarray) -> Any:
    """Rows `order` of every array of an observation (an array, or a dict of them)."""
    if isinstance(obs, dict):
        return {k: _take(v, order) for k, v in obs.items()}
    return np.asarray(obs)[order]
