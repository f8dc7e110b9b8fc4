"""Host vector environments for the sebulba loop: any gymnasium id, stepped with numpy.

`HostEnv` wraps `gymnasium.make_vec` with the same-step autoreset mode and gymnasium's own
`RecordEpisodeStatistics` vector wrapper, and returns the same fields as the in-graph
`JaxEnv.step`: `obs` to act on next (the reset observation where an episode ended), and
`next_obs`, the true observation the transition reached (gymnasium's `final_obs` there), so a
time-limit truncation can bootstrap from it.

Why same-step: gymnasium 1.x's default `NEXT_STEP` mode returns the final observation on the
ending step and the reset observation one call *later*, ignoring that call's action and
reporting a fake zero-reward transition; an actor loop that does not special-case it learns
from transitions that never happened (https://farama.org/Vector-Autoreset-Mode).

`host_env` builds the host env of an id on a backend: `HostEnv` on gymnasium's "sync" or
"async" vector env, or `inject_rl.envs.EnvpoolEnv` for an `envpool/<TaskId>` id; every backend
returns the same `HostTimeStep` fields (`HostSpaces` gives them the same space properties).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from inject_rl.envs._spaces import (
    DISCRETE,
    MULTI_DISCRETE,
    ActionSpaceInfo,
    ObsPreprocessor,
    action_kind,
)
from inject_rl.envs._spaces import spec as env_spec


class HostTimeStep(NamedTuple):
    """What `HostEnv.step` returns: numpy arrays with a leading `[num_envs]` axis."""

    obs: np.ndarray  # [B, *obs] float32: observation to act on next (after autoreset)
    reward: np.ndarray  # [B] float32
    terminated: np.ndarray  # [B] bool: next_obs is terminal (no bootstrap)
    truncated: np.ndarray  # [B] bool: time limit reached and not terminated
    next_obs: np.ndarray  # [B, *obs] float32: true observation reached, before autoreset
    episode_return: np.ndarray  # [B] float32: return of the episode ending here, else 0
    episode_length: np.ndarray  # [B] int32: its length, else 0

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class HostSpaces(ActionSpaceInfo):
    """The space properties every host env shares (`HostEnv`, `EnvpoolEnv`), read from
    `id`, `action_space`, `action_kind` and `obs_preprocessor`; they match `JaxEnv`'s, so
    agents build their networks from any of them."""

    id: str
    action_space: Any
    action_kind: str
    obs_preprocessor: ObsPreprocessor

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation as the networks get it (`obs_preprocessor.shape`)."""
        return self.obs_preprocessor.shape

    def _checked_action(self, action: Any) -> np.ndarray:
        """`action` as the env takes it: integers for Discrete/MultiDiscrete, floats clipped
        to the Box bounds (as `JaxEnv.step` does).

        Raises:
          ValueError: not `[num_envs, *action_shape]`.
        """
        action = np.asarray(action)
        expected = (self.num_envs, *self.action_shape)
        if action.shape != expected:
            raise ValueError(f"{self.id}: action shape must be {expected}, got {action.shape}")
        if self.action_kind in (DISCRETE, MULTI_DISCRETE):
            return action.astype(np.int64)
        return np.clip(action.astype(np.float32), self.action_low, self.action_high)


class HostEnv(HostSpaces):
    """`num_envs` copies of a gymnasium env on the host, same-step autoreset, episode stats.

    Observations: any space of `inject_rl.envs.OBSERVATION_SPACES`, returned as the float32
    network inputs of `obs_preprocessor` (an image Box keeps `[H, W, C]`; everything else is
    flattened as `gymnasium.spaces.flatten` does: one-hot for Discrete, Dict/Tuple parts
    concatenated), so `obs_shape` is the shape of those inputs. Actions: `Discrete` or
    `MultiDiscrete` (starting at 0), or a float `Box`, whose actions are clipped to the bounds
    before the env sees them (as `JaxEnv.step` does, so an unsquashed Gaussian policy acts as
    the nearest bound). The space properties (`obs_shape`, `action_kind`, `discrete`,
    `num_actions`, `action_shape`, `action_low`, `action_high`) match `JaxEnv`'s, so agents
    build their networks from either. Any other space: ValueError when the env is made.

    Not thread-safe: one actor thread steps one `HostEnv`. Close it with `close()` (or use it
    as a context manager).

    >>> from inject_rl.envs import HostEnv
    >>> with HostEnv("CartPole-v1", 2) as env:
    ...     obs = env.reset(seed=0)
    ...     ts = env.step(np.zeros(2, np.int32))
    >>> obs.shape, ts.reward.tolist(), env.num_actions, env.max_episode_steps
    ((2, 4), [1.0, 1.0], 2, 500)
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        vectorization_mode: str = "sync",
        **kwargs: Any,
    ):
        """Builds the vector env.

        Args:
          env_id: any registered gymnasium id, e.g. "CartPole-v1", "Pendulum-v1", or
            "module:Env-v0" (imports `module` first, which registers `Env-v0`; as
            `gymnasium.make` does).
          num_envs: number of copies, >= 1.
          vectorization_mode: "sync" (one process, stepped in turn) or "async" (one
            subprocess per env, forked; the same transitions as "sync" for a seed, worth it
            only for slow envs on spare cores).
          **kwargs: passed to each env's constructor, as `gymnasium.make` does.

        Raises:
          ValueError: unknown id, bad `num_envs`, or unsupported spaces.
        """
        import gymnasium
        from gymnasium.wrappers.vector import RecordEpisodeStatistics

        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs=!r}")
        if vectorization_mode not in ("sync", "async"):
            raise ValueError(
                f"vectorization_mode must be 'sync' or 'async' (same-step autoreset needs "
                f"gymnasium's generic vector envs), got {vectorization_mode=!r}"
            )
        spec = env_spec(env_id)  # imports the module of a "module:Env-v0" id
        with warnings.catch_warnings():
            # "async" forks its workers with gymnasium's default start method, after jax has
            # started its threads; jax warns that fork may deadlock. The workers only step
            # gymnasium envs (never jax), and "spawn"/"forkserver" would re-run the caller's
            # main module in every worker (a script without `if __name__ == "__main__"` would
            # fail), so the warning is silenced here, for these forks only.
            warnings.filterwarnings(
                "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
            )
            vec = gymnasium.make_vec(
                env_id,
                num_envs=num_envs,
                vectorization_mode=vectorization_mode,
                vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
                **kwargs,
            )
        self._env = RecordEpisodeStatistics(vec)
        self.id = spec.id
        self.num_envs = num_envs
        self.max_episode_steps = kwargs.get("max_episode_steps", spec.max_episode_steps)
        self.observation_space = vec.single_observation_space
        self.action_space = vec.single_action_space
        self.closed = False
        try:
            self.obs_preprocessor = ObsPreprocessor(self.observation_space)
            self.action_kind = action_kind(self.action_space)
        except ValueError as e:
            self.close()
            raise ValueError(f"{env_id}: {e}") from None

    def __repr__(self) -> str:
        return f"HostEnv(id={self.id!r}, num_envs={self.num_envs})"

    def __enter__(self) -> HostEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------- dynamics

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Resets every env; env `i` is seeded with `seed + i` (gymnasium's rule).

        Returns:
          `[num_envs, *obs_shape]` float32 observations (preprocessed).
        """
        obs, _ = self._env.reset(seed=seed)
        return self.obs_preprocessor(obs)

    def step(self, action: Any) -> HostTimeStep:
        """Steps every env once; ended episodes are reset in the same call.

        Args:
          action: `[num_envs]` integers (Discrete), `[num_envs, *action_shape]` integers
            (MultiDiscrete) or floats (Box).

        Returns:
          A `HostTimeStep`.
        """
        action = self._checked_action(action)
        obs, reward, terminated, truncated, info = self._env.step(action)
        obs = self.obs_preprocessor(obs)
        terminated = np.asarray(terminated, bool)
        # The time limit and termination can coincide: termination wins (no bootstrap).
        truncated = np.asarray(truncated, bool) & ~terminated
        next_obs = obs
        if "final_obs" in info:
            next_obs = obs.copy()
            ended = np.flatnonzero(info["_final_obs"])
            final = [self.obs_preprocessor.single(info["final_obs"][i]) for i in ended]
            next_obs[ended] = np.stack(final)
        episode_return = np.zeros(self.num_envs, np.float32)
        episode_length = np.zeros(self.num_envs, np.int32)
        if "episode" in info:
            ended = info["_episode"]
            episode_return[ended] = info["episode"]["r"][ended]
            episode_length[ended] = info["episode"]["l"][ended]
        return HostTimeStep(
            obs,
            np.asarray(reward, np.float32),
            terminated,
            truncated,
            next_obs,
            episode_return,
            episode_length,
        )

    def close(self) -> None:
        """Closes the envs (idempotent)."""
        if not self.closed:
            self.closed = True
            self._env.close()


# The host vector backends of a gymnasium id (`host_env`'s `vectorization`); an `envpool/*` id
# always runs on envpool's own C++ thread pool.
VECTORIZATIONS = ("sync", "async")


def host_env(env_id: str, num_envs: int, *, vectorization: str = "sync", **kwargs: Any) -> Any:
    """`num_envs` host envs of `env_id` on the backend its id and `vectorization` name.

    An `envpool/<TaskId>` id gives an `inject_rl.envs.EnvpoolEnv` (envpool's C++ vector env,
    `pip install 'inject-rl[envpool]'`); any other id a `HostEnv` on gymnasium's "sync" (one
    process, envs stepped in turn) or "async" (one subprocess per env) vector env. All return
    the same `HostTimeStep`s with same-step autoreset, and the same transitions for a seed on
    "sync" and "async".

    Args:
      env_id: a gymnasium id, "module:Env-v0", or "envpool/<TaskId>".
      num_envs: number of copies, >= 1.
      vectorization: "sync" or "async" for a gymnasium id; an envpool id takes only "sync"
        (the default: its threads are envpool's own).
      **kwargs: passed to each env's constructor (gymnasium) or to `envpool.make`.

    Raises:
      ValueError: a bad `vectorization` (one line naming it and the allowed values), an
        unknown id, a missing envpool package, or unsupported spaces.

    >>> with host_env("CartPole-v1", 2, vectorization="sync") as env:
    ...     env.reset(seed=0).shape
    (2, 4)
    """
    check_vectorization(env_id, vectorization)
    if is_envpool_id(env_id):
        from inject_rl.envs._envpool import EnvpoolEnv

        return EnvpoolEnv(env_id, num_envs, **kwargs)
    return HostEnv(env_id, num_envs, vectorization_mode=vectorization, **kwargs)


def check_vectorization(env_id: str, vectorization: Any) -> None:
    """Raises a one-line ValueError for a `vectorization` that `host_env(env_id, ...)` would not
    run: other than "sync"/"async", or "async" for an `envpool/*` id (envpool steps its envs
    on its own threads; an "async" that changed nothing would mislead)."""
    if not isinstance(vectorization, str) or vectorization not in VECTORIZATIONS:
        raise ValueError(
            f"vectorization must be one of {', '.join(map(repr, VECTORIZATIONS))}, "
            f"got vectorization={vectorization!r}"
        )
    if vectorization != "sync" and is_envpool_id(env_id):
        raise ValueError(
            f"vectorization={vectorization!r} applies to gymnasium ids; {env_id} steps its envs "
            "on envpool's own threads: leave vectorization='sync'"
        )


def is_envpool_id(env_id: Any) -> bool:
    """Whether `env_id` names an envpool task ("envpool/<TaskId>", e.g. "envpool/Pong-v5").

    >>> is_envpool_id("envpool/CartPole-v1"), is_envpool_id("CartPole-v1")
    (True, False)
    """
    return isinstance(env_id, str) and env_id.startswith(ENVPOOL_PREFIX)


ENVPOOL_PREFIX = "envpool/"


def host_spaces(env_id: str, **kwargs: Any) -> Any:
    """A closed one-env host env of `env_id` (`host_env`): its space properties, for building
    networks. For an envpool id nothing is stepped or even made (envpool's spec is read).

    >>> host_spaces("Pendulum-v1").action_shape
    (1,)
    """
    env = host_env(env_id, 1, **kwargs)
    env.close()
    return env
