"""Resolving gymnasium ids to in-graph `JaxEnv`s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    """Lists the registered gymnasium ids that `make` supports, sorted.

    An id is supported when its entry point is a gymnasium `FunctionalJaxEnv` subclass and its
    namespace is not excluded (`tabular/*` is). Registrations made after import are seen.

    Returns:
        The supported ids.

    >>> from inject_rl.envs import jax_env_ids
    >>> jax_env_ids()
    ['phys2d/CartPole-v0', 'phys2d/CartPole-v1', 'phys2d/Pendulum-v0']
    """
    from gymnasium.envs.registration import registry

    return sorted(
        env_id
        for env_id, spec in registry.items()
        if _excluded_reason(spec) is None and _entry_point_is_functional_jax(spec)
    )


def _available() -> str:
    return ", ".join(jax_env_ids())


def is_jax_env(env_id: str) -> bool:
    """Whether `make(env_id)` can build an in-graph env; False for unknown or host-only ids.

    Args:
        env_id: A gymnasium id, or "module:Env-v0" (imports `module` first, as `gymnasium.make`
            does).

    Returns:
        True if `env_id` resolves to a supported functional JAX env.
    """
    try:
        spec = env_spec(env_id)  # same resolution as `make`
    except ValueError:
        return False
    return _excluded_reason(spec) is None and _entry_point_is_functional_jax(spec)


def make(
    env_id: str, *, max_episode_steps: int | None = None, params: Any = None, **kwargs: Any
) -> JaxEnv:
    """Builds the in-graph env for a gymnasium functional JAX id.

    The id is resolved through gymnasium's registry; the entry point (a `FunctionalJaxEnv`
    subclass such as `CartPoleJaxEnv`) is constructed with the spec's kwargs updated by `kwargs`
    and its `func_env` is kept. The time limit comes from the spec unless overridden.

    Args:
        env_id: A registered id, e.g. "phys2d/CartPole-v1"; see `jax_env_ids()`.
        max_episode_steps: Overrides the spec's time limit; must be a positive int.
        params: The FuncEnv params to use; defaults to `func_env.get_default_params()`.
        **kwargs: Passed to the entry point's constructor, as `gymnasium.make` does.

    Returns:
        The `JaxEnv`.

    Raises:
        ValueError: `env_id` is unknown, has no functional JAX form (a host-loop env), is in an
            excluded namespace, or `max_episode_steps` is not a positive int.

    >>> import jax
    >>> from inject_rl.envs import make
    >>> env = make("phys2d/CartPole-v1")
    >>> state, obs = env.reset(jax.random.key(0))
    >>> obs.shape, obs.dtype, env.num_actions, env.max_episode_steps
    ((4,), dtype('float32'), 2, 500)
    """
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
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps=}")

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
