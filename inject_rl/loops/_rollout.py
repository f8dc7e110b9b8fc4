"""The rollout scan shared by the on-device (anakin) agents: env steps plus episode statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.envs import EnvState, JaxEnv
from inject_rl.signals import EpisodeStats, EpisodeStatsState

# policy(obs [B, ...], key) -> (action [B, ...], extras: dict of [B, ...] arrays)
Policy = Callable[[jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


class Transition(NamedTuple):
    """One step of a batch of envs; a rollout stacks them to `[T, B, ...]`."""

    obs: jax.Array  # [B, *obs_shape] float32: observation acted on
    action: jax.Array  # [B] int32 (discrete) or [B, D] float32
    reward: jax.Array  # [B] float32
    terminated: jax.Array  # [B] bool: next_obs is terminal (no bootstrap)
    truncated: jax.Array  # [B] bool: time limit (bootstrap from next_obs)
    next_obs: jax.Array  # [B, *obs_shape] float32: true next observation, before autoreset
    extras: dict[str, Any]  # policy outputs at `obs`, e.g. log_prob [B], value [B]

    @property
    def done(self) -> jax.Array:
        return self.terminated | self.truncated


class ActorState(NamedTuple):
    """Envs of one device between rollouts."""

    env_state: EnvState  # batched over envs
    obs: jax.Array  # [B, *obs_shape] float32
    stats: EpisodeStatsState  # episode statistics of these envs


def init_actor(env: JaxEnv, num_envs: int, key: jax.Array) -> ActorState:
    """Resets `num_envs` envs with independent keys."""
    env_state, obs = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return ActorState(env_state, obs, EpisodeStats.init(num_envs))


def env_step(env: JaxEnv, actor: ActorState, action: jax.Array, key: jax.Array):
    """Steps every env once; returns the new actor state and the batched `TimeStep`."""
    keys = jax.random.split(key, actor.obs.shape[0])
    env_state, ts = env.step_batch(actor.env_state, action, keys)
    stats = EpisodeStats.update(actor.stats, ts.reward, ts.done)
    return ActorState(env_state, ts.obs, stats), ts


def rollout(env: JaxEnv, policy: Policy, actor: ActorState, key: jax.Array, length: int):
    """Runs `policy` for `length` steps on every env with `lax.scan`.

    Returns:
      `(actor, transitions)` with transitions stacked to `[length, B, ...]`.
    """

    def step(actor: ActorState, key):
        k_act, k_env = jax.random.split(key)
        action, extras = policy(actor.obs, k_act)
        new_actor, ts = env_step(env, actor, action, k_env)
        tr = Transition(
            actor.obs, action, ts.reward, ts.terminated, ts.truncated, ts.next_obs, extras
        )
        return new_actor, tr

    return jax.lax.scan(step, actor, jax.random.split(key, length))


def evaluate_policy(
    env: JaxEnv, policy: Callable[[jax.Array], jax.Array], episodes: int, key: jax.Array
) -> jax.Array:
    """Mean undiscounted return of the first episode of `episodes` parallel envs.

    Args:
      env: the environment (must have a time limit).
      policy: deterministic `obs [B, ...] -> action [B, ...]`.
      episodes: number of envs, one episode each.
      key: PRNG key for resets and env randomness.

    Returns:
      float32 scalar: the mean of `evaluate_policy_returns`.
    """
    return evaluate_policy_returns(env, policy, episodes, key).mean()


def evaluate_policy_returns(
    env: JaxEnv, policy: Callable[[jax.Array], jax.Array], episodes: int, key: jax.Array
) -> jax.Array:
    """The undiscounted return of the first episode of each of `episodes` parallel envs.

    Args: as `evaluate_policy`'s.

    Returns:
      float32 `[episodes]`.

    Raises:
      ValueError: the env has no time limit.
    """
    if env.max_episode_steps is None:
        raise ValueError(f"{env.id}: evaluation needs a time limit, got max_episode_steps=None")
    k_reset, k_run = jax.random.split(key)
    actor = init_actor(env, episodes, k_reset)

    def step(carry, key):
        actor, ret, alive = carry
        new_actor, ts = env_step(env, actor, policy(actor.obs), key)
        ret = ret + jnp.where(alive, ts.reward, 0.0)
        return (new_actor, ret, alive & ~ts.done), None

    init = (actor, jnp.zeros(episodes, jnp.float32), jnp.ones(episodes, bool))
    (_, ret, _), _ = jax.lax.scan(step, init, jax.random.split(k_run, env.max_episode_steps))
    return ret
