"""Resolving gymnasium ids to in-graph `JaxEnv`s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inject_rl.envs import _brax
from inject_rl.envs._jax_env import JaxEnv
from inject_rl.envs._spaces import spec as env_spec

if TYPE_CHECKING:
    from gymnasium.envs.registration import EnvSpec

# Namespaces whose ids are FunctionalJaxEnvs but do not fit `JaxEnv`: gymnasium's tabular FuncEnvs
# (Blackjack, CliffWalking) have integer observations, CliffWalking an integer Box action, and
# neither a time limit.
_EXCLUDED_NAMESPACES = {"tabular": "integer observations/actions and no time limit"}

_HOST_LOOP = "sebulba"


def _entry_point_is_functional_jax(spec: EnvSpec) -> bool:
    """Whether the spec's entry point is a gymnasium `FunctionalJaxEnv` subclass."""
    from gymnasium.envs.functional_jax_env import FunctionalJaxEnv
    from gymnasium.envs.registration import load_env_creator

    creator = spec.entry_point
    if isinstance(creator, str):
        try:
            creator = load_env_creator(creator)
        except Exception:
            # Entry points with optional dependencies (box2d, mujoco, ...) fail to import in any
            # number of ways; a module that cannot be imported is not a usable JAX env here.
            return False
    return isinstance(creator, type) and issubclass(creator, FunctionalJaxEnv)


def _excluded_reason(spec: EnvSpec) -> str | None:
    return _EXCLUDED_NAMESPACES.get(spec.namespace) if spec.namespace else None


def jax_env_ids() -> list[str]:
    """Lists the ids that `make` supports, sorted.

    A gymnasium id is supported when its entry point is a gymnasium `FunctionalJaxEnv` subclass
    and its namespace is not excluded (`tabular/*` is); with brax installed, `brax/<name>` for
    every env in brax's registry is too (each also as `brax/<name>@<backend>`, not listed).
    Registrations made after import are seen.

    Returns:
        The supported ids.

    >>> from inject_rl.envs import jax_env_ids
    >>> [i for i in jax_env_ids() if not i.startswith("brax/")]
    ['phys2d/CartPole-v0', 'phys2d/CartPole-v1', 'phys2d/Pendulum-v0']
    """
    from gymnasium.envs.registration import registry

    gymnasium_ids = [
        env_id
        for env_id, spec in registry.items()
        if _excluded_reason(spec) is None and _entry_point_is_functional_jax(spec)
    ]
    return sorted(gymnasium_ids + _brax.brax_env_ids())


def _available() -> str:
    return ", ".join(jax_env_ids())


def is_jax_env(env_id: str) -> bool:
    """Whether `make(env_id)` can build an in-graph env; False for unknown or host-only ids.

    A `brax/*` id is in-graph when brax knows its name and backend, and whatever its name when
    brax is not installed (so that `make` tells how to install it rather than the host loop
    failing on an unknown gymnasium id).

    Args:
        env_id: A gymnasium id, or "module:Env-v0" (imports `module` first, as `gymnasium.make`
            does), or `brax/<name>[@<backend>]`.

    Returns:
        True if `env_id` resolves to a supported functional JAX env.
    """
    if _brax.is_brax_id(env_id):
        return not _brax.installed() or _brax.is_known(env_id)
    try:
        spec = env_spec(env_id)  # same resolution as `make`
    except ValueError:
        return False
    return _excluded_reason(spec) is None and _entry_point_is_functional_jax(spec)


def make(
    env_id: str, *, max_episode_steps: int | None = None, params: Any = None, **kwargs: Any
) -> JaxEnv:
    """Builds the in-graph env for a gymnasium functional JAX id or a brax id.

    A gymnasium id is resolved through gymnasium's registry; the entry point (a
    `FunctionalJaxEnv` subclass such as `CartPoleJaxEnv`) is constructed with the spec's kwargs
    updated by `kwargs` and its `func_env` is kept. The time limit comes from the spec unless
    overridden.

    A `brax/<name>[@<backend>]` id builds `brax.envs.get_environment(name, backend=backend,
    **kwargs)` (backend default `_brax.DEFAULT_BACKEND`) with a time limit of 1000 steps (brax's
    `episode_length`) unless overridden; its actions are a Box [-1, 1] (brax's convention).

    Args:
        env_id: A registered id, e.g. "phys2d/CartPole-v1" or "brax/halfcheetah"; see
            `jax_env_ids()`.
        max_episode_steps: Overrides the spec's time limit; must be a positive int.
        params: The FuncEnv params to use; defaults to `func_env.get_default_params()` (brax
            envs have none).
        **kwargs: Passed to the entry point's constructor, as `gymnasium.make` does (to the brax
            env's constructor for a brax id, e.g. `terminate_when_unhealthy=False`).

    Returns:
        The `JaxEnv`.

    Raises:
        ValueError: `env_id` is unknown, has no functional JAX form (a host-loop env), is in an
            excluded namespace, or `max_episode_steps` is not a positive int.
        MissingExtra: a brax id without brax installed (a ValueError and an ImportError).

    >>> import jax
    >>> from inject_rl.envs import make
    >>> env = make("phys2d/CartPole-v1")
    >>> state, obs = env.reset(jax.random.key(0))
    >>> obs.shape, obs.dtype, env.num_actions, env.max_episode_steps
    ((4,), dtype('float32'), 2, 500)
    """
    if _brax.is_brax_id(env_id):
        return _make_brax(env_id, max_episode_steps, params, kwargs)
    try:
        spec = env_spec(env_id)
    except ValueError as e:
        raise ValueError(f"{e}; JAX env ids: {_available()}") from None

    if not _entry_point_is_functional_jax(spec):
        raise ValueError(
            f"{env_id!r} has no functional JAX form, so it cannot be stepped in-graph; run it on "
            f"the host loop ({_HOST_LOOP}) or use one of the JAX env ids: {_available()}"
        )
    reason = _excluded_reason(spec)
    if reason is not None:
        raise ValueError(
            f"{env_id!r} is a functional JAX env, but {spec.namespace}/* ids are excluded from "
            f"inject_rl.envs ({reason}); run it on the host loop ({_HOST_LOOP}) or use one of "
            f"the JAX env ids: {_available()}"
        )

    limit = spec.max_episode_steps if max_episode_steps is None else max_episode_steps
    _check_limit(limit, max_episode_steps)

    from gymnasium.envs.registration import load_env_creator

    creator = spec.entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    # As gymnasium.make does, minus its wrappers: only the FunctionalJaxEnv's func_env is used.
    func_env = creator(**{**spec.kwargs, **kwargs}).func_env
    return JaxEnv(
        id=spec.id,
        func_env=func_env,
        params=func_env.get_default_params() if params is None else params,
        max_episode_steps=limit,
        observation_space=func_env.observation_space,
        action_space=func_env.action_space,
    )


def _check_limit(limit: Any, max_episode_steps: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps=}")


def _make_brax(env_id: str, max_episode_steps: Any, params: Any, kwargs: dict) -> JaxEnv:
    name, backend = _brax.parse(env_id)  # MissingExtra / ValueError, one line each
    limit = _brax.EPISODE_LENGTH if max_episode_steps is None else max_episode_steps
    _check_limit(limit, max_episode_steps)
    func_env = _brax.func_env(name, backend, **kwargs)
    return JaxEnv(
        id=env_id,
        func_env=func_env,
        params=params,
        max_episode_steps=limit,
        observation_space=func_env.observation_space,
        action_space=func_env.action_space,
        costly_reset=True,  # brax's reset runs the pipeline's init
    )
