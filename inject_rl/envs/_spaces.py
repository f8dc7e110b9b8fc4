"""Gymnasium spaces the agents can use: observations as network inputs, and action kinds.

One preprocessing, `ObsPreprocessor`, turns observations of a gymnasium space into float32
network inputs. `HostEnv` applies it to every observation it returns, so the actor threads, the
learner (which only sees the actors' arrays) and host evaluation all see the same inputs, and
`inject_rl.agents.Policy.act` applies it to the observations a user passes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gymnasium import Space
    from gymnasium.envs.registration import EnvSpec

OBSERVATION_SPACES = "Box, Discrete, MultiDiscrete, MultiBinary, or a Dict/Tuple of these"
ACTION_SPACES = "Discrete or MultiDiscrete (starting at 0), or a float Box"

# Action kinds (`action_kind`); an agent declares those it handles (`Agent.actions`).
DISCRETE, MULTI_DISCRETE, CONTINUOUS, UNBOUNDED = (
    "discrete",
    "multi_discrete",
    "continuous",  # a float Box with finite bounds
    "unbounded",  # a float Box with an infinite bound
)
# How an error message names each kind.
ACTION_KIND_NAMES = {
    DISCRETE: "discrete",
    MULTI_DISCRETE: "MultiDiscrete",
    CONTINUOUS: "continuous (bounded Box)",
    UNBOUNDED: "unbounded Box",
}


# Packages whose gymnasium ids exist only once a function of theirs is called (importing them is
# not enough): namespace -> (module, function, the extra that installs the package).
_REGISTRARS = {"MinAtar": ("minatar.gym", "register_envs", "minatar")}


def _register_on_demand(env_id: str) -> None:
    """Registers `env_id`'s namespace (e.g. `MinAtar/Breakout-v1`) when its package registers
    on request only.

    Raises:
      ValueError: the package is not installed (one line, naming the extra).
    """
    import gymnasium

    namespace = env_id.partition("/")[0] if "/" in env_id and ":" not in env_id else None
    if namespace not in _REGISTRARS or env_id in gymnasium.registry:
        return
    module, function, extra = _REGISTRARS[namespace]
    try:
        getattr(importlib.import_module(module), function)()
    except ImportError:
        raise ValueError(
            f"{env_id} needs the {namespace} package: pip install 'inject-rl[{extra}]'"
        ) from None


def spec(env_id: str) -> EnvSpec:
    """The gymnasium spec of `env_id`, which may name a module to import first
    (`"my_pkg.envs:Corridor-v0"`, as `gymnasium.make` accepts: the import registers the id).

    Raises:
      ValueError: an unknown id, or a module that cannot be imported (one line).

    >>> spec("CartPole-v1").max_episode_steps
    500
    """
    import gymnasium

    if not isinstance(env_id, str):
        raise ValueError(f"env id must be a string, got {env_id!r}")
    _register_on_demand(env_id)
    name = env_id
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(
                f"unknown env id {env_id!r}: cannot import module {module!r} ({e})"
            ) from None
    try:
        return gymnasium.spec(name)
    except gymnasium.error.Error as e:
        raise ValueError(f"unknown env id {env_id!r} ({e})") from None


def action_kind(space: Space) -> str:
    """The kind of an action space: "discrete", "multi_discrete", "continuous" (a float Box
    with finite bounds) or "unbounded" (a float Box with an infinite bound).

    Raises:
      ValueError: any other space (one line, naming it and the allowed ones).

    >>> from gymnasium import spaces
    >>> action_kind(spaces.MultiDiscrete([3, 2])), action_kind(spaces.Box(-1.0, 1.0, (2,)))
    ('multi_discrete', 'continuous')
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete) and int(space.start) == 0:
        return DISCRETE
    if isinstance(space, spaces.MultiDiscrete) and not np.any(space.start):
        return MULTI_DISCRETE
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
        bounded = np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))
        return CONTINUOUS if bounded else UNBOUNDED
    raise ValueError(f"action space {space!r} is not supported; allowed: {ACTION_SPACES}")


class ActionSpaceInfo:
    """The action-space properties every env has (`JaxEnv`, `HostEnv`, `EnvpoolEnv`), read
    from its `id`, `action_space` and `action_kind`: agents build their heads from them."""

    id: str
    action_space: Any
    action_kind: str

    @property
    def discrete(self) -> bool:
        """True for a `Discrete` action space (False for `MultiDiscrete` and `Box`)."""
        return self.action_kind == DISCRETE

    @property
    def num_actions(self) -> int:
        """Number of discrete actions; AttributeError for any other action space."""
        if not self.discrete:
            raise AttributeError(
                f"{self.id} has a {self.action_kind} action space, not Discrete; use action_shape"
            )
        return int(self.action_space.n)

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action: () for Discrete, the MultiDiscrete or Box shape otherwise."""
        return () if self.discrete else tuple(self.action_space.shape)

    @property
    def action_low(self) -> np.ndarray:
        """Lower Box bound, float32; AttributeError for a Discrete or MultiDiscrete space."""
        return self._box_bound("low")

    @property
    def action_high(self) -> np.ndarray:
        """Upper Box bound, float32; AttributeError for a Discrete or MultiDiscrete space."""
        return self._box_bound("high")

    def _box_bound(self, name: str) -> np.ndarray:
        if self.action_kind in (DISCRETE, MULTI_DISCRETE):
            raise AttributeError(f"{self.id} has a {self.action_space} action space, no Box")
        return np.asarray(getattr(self.action_space, name), np.float32)


def is_image(space: Space) -> bool:
    """Whether a Box observation is an image `[H, W, C]` for a conv torso (rank 3, H and W at
    least 3 so that a 3x3 convolution fits); other Boxes are flattened."""
    from gymnasium import spaces

    return isinstance(space, spaces.Box) and len(space.shape) == 3 and min(space.shape[:2]) >= 3


def _scales_to_unit(space: Space) -> bool:
    # uint8 frames in [0, 255] go to [0, 1], as the Nature DQN and SB3's `preprocess_obs` do.
    return space.dtype == np.uint8 and np.all(space.low == 0) and np.all(space.high == 255)


class ObsPreprocessor:
    """Observations of a gymnasium space as float32 network inputs of shape `shape`.

    An image Box (`is_image`) keeps its `[H, W, C]` shape (uint8 frames in [0, 255] are scaled
    to [0, 1]); every other space gives a vector equal to `gymnasium.spaces.flatten(space, obs)`
    as float32, of `gymnasium.spaces.flatten_space(space).shape`: a Box flattened,
    `Discrete` and `MultiDiscrete` one-hot, `Dict` and `Tuple` their parts concatenated in
    order. Computed on a whole batch at once in numpy.

    >>> from gymnasium import spaces
    >>> space = spaces.Dict({"pos": spaces.Discrete(3), "v": spaces.Box(0, 1, (2,))})
    >>> prep = ObsPreprocessor(space)
    >>> prep.shape, prep.single({"pos": 2, "v": np.array([0.5, 1.0])}).tolist()
    ((5,), [0.0, 0.0, 1.0, 0.5, 1.0])

    Raises:
      ValueError: a space other than those of `OBSERVATION_SPACES` (one line).
    """

    def __init__(self, space: Space):
        from gymnasium import spaces

        self.space = space
        _check_obs_space(space, space)
        self.image = is_image(space)
        if self.image:
            self.shape = tuple(space.shape)
            scale = 1.0 / 255.0 if _scales_to_unit(space) else None
            self._fn = lambda x: _as_float(x, scale)
        else:
            self.shape = tuple(spaces.flatten_space(space).shape)
            self._fn = _flattener(space)

    def __repr__(self) -> str:
        return f"ObsPreprocessor({self.space!r} -> {self.shape})"

    def __call__(self, obs: Any) -> np.ndarray:
        """A batch of observations (arrays with a leading `[B]` axis, in dicts/tuples as the
        space has them, as vector envs return them) -> `[B, *shape]` float32."""
        return self._fn(obs)

    def single(self, obs: Any) -> np.ndarray:
        """One observation -> `[*shape]` float32."""
        return self._fn(_map_leaves(self.space, obs, lambda s, x: np.asarray(x)[None]))[0]

    def one_or_batch(self, obs: Any) -> tuple[np.ndarray, bool]:
        """One observation or a batch (told apart by the shapes of the space's parts) ->
        `([B, *shape] float32, single)`.

        Raises:
          ValueError: parts that fit neither one observation nor one batch.
        """
        leads = []
        _map_leaves(self.space, obs, lambda s, x: leads.append(_lead(s, np.asarray(x))))
        if any(lead is None for lead in leads) or len(set(leads)) != 1:
            raise ValueError(
                f"obs must be one observation of {self.space} or a batch of them (a leading "
                f"[B] axis on every part), got {_describe(obs)}"
            )
        if leads[0] == ():
            return self.single(obs)[None], True
        return self._fn(obs), False


def _check_obs_space(space: Space, top: Space) -> None:
    from gymnasium import spaces

    if isinstance(space, spaces.Dict | spaces.Tuple):
        for sub in space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces:
            _check_obs_space(sub, top)
        return
    if isinstance(space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
        return
    where = "" if space is top else f" (in {top})"
    raise ValueError(
        f"observation space {space}{where} is not supported; allowed: {OBSERVATION_SPACES}"
    )


def _as_float(x: Any, scale: float | None) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x if scale is None else x * np.float32(scale)


def _flattener(space: Space) -> Callable[[Any], np.ndarray]:
    """Batched `gymnasium.spaces.flatten(space, .)`: `[B, ...]` parts -> `[B, n]` float32."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        parts = [(k, _flattener(s)) for k, s in space.spaces.items()]
        return lambda x: np.concatenate([f(x[k]) for k, f in parts], axis=1)
    if isinstance(space, spaces.Tuple):
        parts = [_flattener(s) for s in space.spaces]
        return lambda x: np.concatenate([f(xi) for f, xi in zip(parts, x, strict=True)], axis=1)
    if isinstance(space, spaces.Discrete):
        return _one_hot(space, np.array([space.n]), np.array([space.start]))
    if isinstance(space, spaces.MultiDiscrete):
        return _one_hot(space, space.nvec.reshape(-1), space.start.reshape(-1))
    # Box, MultiBinary: the values, flattened.
    return lambda x: (a := np.asarray(x, np.float32)).reshape((a.shape[0], -1))


def _one_hot(space: Space, nvec: np.ndarray, start: np.ndarray) -> Callable:
    """Concatenated one-hots of `len(nvec)` components, as gymnasium flattens a MultiDiscrete."""
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]]).astype(np.int64)
    width = int(np.sum(nvec))

    def f(x):
        x = np.asarray(x).reshape((-1, len(nvec))).astype(np.int64) - start
        if np.any((x < 0) | (x >= nvec)):
            raise ValueError(f"observation outside {space}: {(x + start).tolist()}")
        out = np.zeros((x.shape[0], width), np.float32)
        out[np.arange(x.shape[0])[:, None], offsets + x] = 1.0
        return out

    return f


def _map_leaves(space: Space, obs: Any, fn: Callable[[Space, Any], Any]) -> Any:
    """`fn(leaf_space, leaf_obs)` over the non-Dict/Tuple parts, in the space's structure."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        if not isinstance(obs, dict) or set(obs) != set(space.spaces):
            raise ValueError(f"obs must be a dict with keys {list(space.spaces)}, got {obs!r}")
        return {k: _map_leaves(s, obs[k], fn) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        if not isinstance(obs, tuple | list) or len(obs) != len(space.spaces):
            raise ValueError(f"obs must be a tuple of {len(space.spaces)} parts, got {obs!r}")
        return tuple(_map_leaves(s, o, fn) for s, o in zip(space.spaces, obs, strict=True))
    return fn(space, obs)


def _lead(space: Space, x: np.ndarray) -> tuple[int, ...] | None:
    """`()` for one observation of a leaf space, `(B,)` for a batch, None for neither."""
    shape = tuple(space.shape)
    if x.shape == shape:
        return ()
    if x.ndim == len(shape) + 1 and x.shape[1:] == shape:
        return x.shape[:1]
    return None


def _describe(obs: Any) -> str:
    if isinstance(obs, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in obs.items()) + "}"
    if isinstance(obs, tuple | list):
        return "(" + ", ".join(_describe(v) for v in obs) + ")"
    return f"shape {np.shape(obs)}"
