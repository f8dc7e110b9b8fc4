"""brax environments as in-graph `JaxEnv`s: the ids `brax/<name>` and `brax/<name>@<backend>`.

A brax `Env` already is a pure `reset(rng) -> State` / `step(State, action) -> State` pair whose
`State` carries `obs`, `reward` and `done`; `BraxFuncEnv` presents it under the five `FuncEnv`
methods `JaxEnv` calls, so brax envs get the same in-graph time limit, autoreset, truncation
flags and `next_obs` as gymnasium's `phys2d/*` envs. brax's own `EpisodeWrapper` /
`AutoResetWrapper` are not used: the first reports a time-out as `done` (brax keeps it apart only
in `info["truncation"]`), the second restarts every episode from the same first state.

brax is the optional extra `brax` (`pip install inject-rl[brax]`); nothing here imports it
before a `brax/*` id is made or listed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PREFIX = "brax/"
EXTRA = "pip install inject-rl[brax]"
# brax's physics pipelines (`brax.envs.base.PipelineEnv`). "mjx" needs MuJoCo's JAX port.
BACKENDS = ("generalized", "positional", "spring", "mjx")
# The backend of `brax/<name>`: brax's own default for its envs, and the one that compiles
# fastest on CPU. On 2 shared (busy) CPU cores, halfcheetah: a jitted rollout of 4 envs x 100
# steps compiled in 30 s (generalized), 41 s (positional), 40 s (spring); PPO's whole training
# step (scripts/brax_ppo.py --layout smoke) in 92 s, 105 s, 177 s. Once compiled, spring steps
# fastest on CPU (PPO: 2,300 env-steps/s vs 1,040 generalized, 1,130 positional), so a long CPU
# run may prefer `@spring`.
DEFAULT_BACKEND = "generalized"
# brax's `envs.create(episode_length=1000)` and its training scripts.
EPISODE_LENGTH = 1000


class MissingExtra(ImportError, ValueError):
    """brax is not installed. A ValueError too, so callers that report bad input (the CLI: one
    line, exit 2) report it as such."""


def installed() -> bool:
    """Whether brax can be imported (checked without importing it)."""
    return importlib.util.find_spec("brax") is not None


def _brax_envs() -> Any:
    """`brax.envs`, imported quietly.

    Raises:
      MissingExtra: brax is not installed (one line naming the extra).
    """
    try:
        # mujoco.mjx (imported by brax) prints "Failed to import warp" to stdout when the optional
        # warp package is absent; stdout belongs to the caller (`inject-rl list`).
        with contextlib.redirect_stdout(io.StringIO()):
            import brax.envs
    except ImportError as e:
        raise MissingExtra(f"brax/* envs need brax: {EXTRA} ({e})") from None
    return brax.envs


def is_brax_id(env_id: Any) -> bool:
    """Whether `env_id` is in the `brax/` namespace (known or not)."""
    return isinstance(env_id, str) and env_id.startswith(PREFIX)


def names() -> list[str]:
    """The names of brax's registered envs, sorted (those added by
    `brax.envs.register_environment` included).

    Raises:
      MissingExtra: brax is not installed.
    """
    # brax keeps its registry in a module dict and has no public accessor for it.
    return sorted(_brax_envs()._envs)


def brax_env_ids() -> list[str]:
    """`brax/<name>` for every registered brax env; empty when brax is not installed."""
    return [PREFIX + n for n in names()] if installed() else []


def parse(env_id: str) -> tuple[str, str]:
    """`(name, backend)` of a `brax/<name>[@<backend>]` id, checked against brax's registry.

    Raises:
      MissingExtra: brax is not installed.
      ValueError: not a `brax/` id, an unknown name or backend (one line listing the allowed).

    >>> parse("brax/halfcheetah@spring")
    ('halfcheetah', 'spring')
    """
    if not is_brax_id(env_id):
        raise ValueError(f"not a brax env id (brax/<name>[@<backend>]): {env_id!r}")
    name, sep, backend = env_id[len(PREFIX) :].partition("@")
    known = names()
    if name not in known:
        raise ValueError(
            f"unknown brax env {name!r} in {env_id!r}; brax env ids: "
            f"{', '.join(PREFIX + n for n in known)} (optionally @<backend>, one of "
            f"{', '.join(BACKENDS)})"
        )
    if not sep:
        return name, DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown brax backend {backend!r} in {env_id!r}; backends: {', '.join(BACKENDS)} "
            f"(default {DEFAULT_BACKEND})"
        )
    return name, backend


def is_known(env_id: Any) -> bool:
    """Whether `env_id` is a `brax/` id that `make` can build (brax installed, name and backend
    known)."""
    if not is_brax_id(env_id):
        return False
    try:
        parse(env_id)
    except ValueError:  # MissingExtra included
        return False
    return True


@dataclasses.dataclass(frozen=True, eq=False)
class BraxFuncEnv:
    """A brax `Env` under the `FuncEnv` methods that `JaxEnv` calls; the state is brax's `State`.

    brax steps are deterministic and take no key, so `transition` ignores its key; `reset` uses
    it. `reward` and `terminal` read what `env.step` stored in the next state (brax computes them
    with the transition). A brax `done` is a termination of the MDP (e.g. hopper falling): no
    time limit is applied here (`JaxEnv` truncates).

    Attributes:
      env: the brax env, e.g. `brax.envs.get_environment("halfcheetah", backend="generalized")`.
      obs_size: length of its (flat, float) observation.
      action_size: length of its action; brax's actions lie in [-1, 1].
    """

    env: Any
    obs_size: int
    action_size: int

    @property
    def observation_space(self) -> Any:
        from gymnasium import spaces

        return spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)

    @property
    def action_space(self) -> Any:
        from gymnasium import spaces

        return spaces.Box(-1.0, 1.0, (self.action_size,), np.float32)

    def get_default_params(self) -> None:
        return None

    def initial(self, rng: jax.Array, params: Any = None) -> Any:
        return self.env.reset(rng)

    def observation(self, state: Any, rng: jax.Array, params: Any = None) -> jax.Array:
        return state.obs

    def transition(self, state: Any, action: jax.Array, rng: jax.Array, params: Any = None):
        return self.env.step(state, action)

    def reward(self, state: Any, action: jax.Array, next_state: Any, rng: jax.Array, params=None):
        return next_state.reward

    def terminal(self, state: Any, rng: jax.Array, params: Any = None) -> jax.Array:
        return state.done > 0


def func_env(name: str, backend: str, **kwargs: Any) -> BraxFuncEnv:
    """The `BraxFuncEnv` of brax's env `name` on `backend`.

    Raises:
      ValueError: an observation that is not one flat float vector (brax's dict observations).
    """
    envs = _brax_envs()
    with warnings.catch_warnings():
        # brax warns on every model load that its pipelines are in maintenance mode (MJX is
        # DeepMind's maintained engine); said once in the README, not on every `make`.
        warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
        # `fast` (brax's unit-test env) has no physics and takes any keyword.
        env = envs.get_environment(name, backend=backend, **kwargs)
    # Shapes only: brax's own `observation_size` runs a whole reset op by op.
    shapes = jax.eval_shape(env.reset, jax.random.key(0))
    obs = shapes.obs
    if not isinstance(obs, jax.ShapeDtypeStruct) or obs.ndim != 1:
        raise ValueError(
            f"brax/{name}: observations must be one flat vector, got {obs!r} (dict observations "
            "are not supported in-graph yet)"
        )
    if not jnp.issubdtype(obs.dtype, jnp.floating):
        raise ValueError(f"brax/{name}: observations must be floats, got {obs.dtype}")
    return BraxFuncEnv(env, int(obs.shape[0]), int(env.action_size))
