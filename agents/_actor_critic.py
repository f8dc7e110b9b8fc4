"""What the on-policy actor-critic agents (PPO, IMPALA) share: the policy over an env's action
space and its acting functions (in `_actor_critic_policy`), and the learners of both loops
around an agent's `update`.

**Normalisation** (Config `normalize_obs`, `normalize_reward`; issue 13 item 2). The learners
hand an agent's `update` the rollout as the networks see it: observations standardised by the
running statistics the actors acted with (`TrainState.obs_norm`), rewards divided by the running
standard deviation of each env's discounted return (`TrainState.reward_scale`, updated with the
rollout first, as SB3's VecNormalize does step by step). The observation statistics take the
rollout's observations after the update, so the update sees exactly the inputs of the behaviour
policy (PPO's ratios start at 1; the KL signal measures the policy change alone). Both are synced
over the device axis, live in the training state (checkpoints, resume) and the observation
statistics travel with the params the actors and the saved policy get (`networks.with_obs_norm`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from inject_rl import loops
from inject_rl.agents import networks
from inject_rl.agents._actor_critic_policy import ACTIONS, ActorCritic, acting
from inject_rl.agents._common import per_device
from inject_rl.agents._contract import Agent, AnakinLearner, SebulbaLearner
from inject_rl.signals import (
    EpisodeStats,
    RewardScale,
    RewardScaleState,
    RunningMeanStd,
    RunningMeanStdState,
)


class TrainState(NamedTuple):
    """Everything one device carries between iterations."""

    params: Any
    opt_state: Any
    actor: loops.ActorState | None  # in-graph envs (anakin); None on the host loop
    key: jax.Array
    step: jax.Array  # shape=(), dtype=int32; env steps so far, all devices
    obs_norm: RunningMeanStdState | None = None  # normalize_obs: identical on every device
    reward_scale: RewardScaleState | None = None  # normalize_reward: returns of this device's envs


# update(params, opt_state, traj [T, B], last_obs [B, *obs], episodes, step, key, axis_name)
#   -> (params, opt_state, metrics); `episodes` are this device's episode statistics, synced by
#   `update` inside its gradient all-reduce (`learner_step(..., sync_episodes=True)`), and the
#   metrics hold the synced values.
Update = Callable[..., tuple[Any, Any, dict[str, jax.Array]]]


def _init(cfg, env, opt, policy, device_index, actor_of, envs_per_device) -> TrainState:
    k_params, k_env, k_run = jax.random.split(jax.random.key(cfg.seed), 3)
    params = policy.net.init(k_params, jnp.zeros((1, *env.obs_shape), jnp.float32))
    return TrainState(
        params,
        opt.init(params),
        actor_of(jax.random.fold_in(k_env, device_index)),
        jax.random.fold_in(k_run, device_index),
        jnp.zeros((), jnp.int32),
        RunningMeanStd.init(env.obs_shape) if cfg.normalize_obs else None,
        RewardScale.init(envs_per_device) if cfg.normalize_reward else None,
    )


def _normalized(cfg, ts: TrainState, traj: loops.Transition, last_obs, axis_name):
    """`(traj, last_obs, reward_scale)`: the rollout as `update` trains on it (observations
    normalised by the statistics the actors used, rewards scaled by the return statistics
    updated with this rollout) and the updated reward statistics."""
    reward_scale = ts.reward_scale
    if reward_scale is not None:
        reward_scale = RewardScale.update(
            reward_scale, traj.reward, traj.done, cfg.gamma, axis_name
        )
        traj = traj._replace(reward=RewardScale.scale(reward_scale, traj.reward))
    if ts.obs_norm is not None:
        norm = lambda x: RunningMeanStd.normalize(ts.obs_norm, x)  # noqa: E731
        traj = traj._replace(obs=norm(traj.obs), next_obs=norm(traj.next_obs))
        last_obs = norm(last_obs)
    return traj, last_obs, reward_scale


def _observed(ts: TrainState, obs, axis_name) -> RunningMeanStdState | None:
    """The observation statistics with the rollout's observations `[T, B, *obs]` merged."""
    return None if ts.obs_norm is None else RunningMeanStd.update(ts.obs_norm, obs, axis_name)


def actor_params(ts: TrainState) -> Any:
    """What acts: the params, carrying the observation statistics when there are any."""
    return networks.with_obs_norm(ts.params, ts.obs_norm)


def anakin(
    agent: str, cfg: Any, env: Any, opt: Any, num_devices: int, torso, make_update
) -> AnakinLearner:
    """The in-graph learner: roll out `rollout_len` steps per env, then `update`.

    `make_update(cfg, policy, opt, batch_per_device) -> Update`.
    """
    (envs_per_device,) = per_device(agent, cfg, num_devices, "num_envs")
    policy = ActorCritic(env, torso, cfg.log_std_init)
    update = make_update(cfg, policy, opt, envs_per_device * cfg.rollout_len)

    def init(device_index):
        actor_of = lambda k: loops.init_actor(env, envs_per_device, k)  # noqa: E731
        return _init(cfg, env, opt, policy, device_index, actor_of, envs_per_device)

    def iteration(ts: TrainState, axis_name: str | None):
        key, k_roll, k_update = jax.random.split(ts.key, 3)
        actor = ts.actor._replace(stats=EpisodeStats.new_window(ts.actor.stats))
        view = actor_params(ts)
        actor, traj = loops.rollout(
            env, lambda obs, k: policy.sample(view, obs, k), actor, k_roll, cfg.rollout_len
        )
        step = ts.step + cfg.steps_per_iteration
        episodes = EpisodeStats.summary(actor.stats)  # this device's: `update` syncs them
        seen, last_obs, reward_scale = _normalized(cfg, ts, traj, actor.obs, axis_name)
        params, opt_state, metrics = update(
            ts.params, ts.opt_state, seen, last_obs, episodes, step, k_update, axis_name
        )
        obs_norm = _observed(ts, traj.obs, axis_name)
        return TrainState(params, opt_state, actor, key, step, obs_norm, reward_scale), metrics

    return AnakinLearner(init, iteration)


def sebulba(
    agent: str, cfg: Any, env: Any, opt: Any, num_devices: int, torso, make_update
) -> SebulbaLearner:
    """The host-env learner: `update` on each rollout the actor threads deliver."""
    (envs_per_device,) = per_device(agent, cfg, num_devices, "num_envs")
    policy = ActorCritic(env, torso, cfg.log_std_init)
    update = make_update(cfg, policy, opt, envs_per_device * cfg.rollout_len)

    def init(device_index):
        return _init(cfg, env, opt, policy, device_index, lambda k: None, envs_per_device)

    def learn(ts: TrainState, rollout: loops.HostRollout, axis_name: str | None):
        key, k_update = jax.random.split(ts.key)
        step = ts.step + cfg.steps_per_iteration
        episodes = loops.host_episode_summary(rollout)  # this device's: `update` syncs them
        seen, last_obs, reward_scale = _normalized(
            cfg, ts, rollout.traj, rollout.last_obs, axis_name
        )
        params, opt_state, metrics = update(
            ts.params, ts.opt_state, seen, last_obs, episodes, step, k_update, axis_name
        )
        obs_norm = _observed(ts, rollout.traj.obs, axis_name)
        return TrainState(params, opt_state, None, key, step, obs_norm, reward_scale), metrics

    return SebulbaLearner(
        init,
        policy.sample,
        learn,
        rollout_len=cfg.rollout_len,
        staleness=cfg.staleness,
        actor_params=actor_params,
        num_actor_threads=cfg.num_actor_threads,
    )


def agent(
    name: str, description: str, config: type, default_optimizer, make_update, presets
) -> Agent:
    """An on-policy actor-critic `Agent` (PPO, IMPALA) on both loops, around its `make_update`."""
    return Agent(
        name=name,
        description=description,
        config=config,
        default_optimizer=default_optimizer,
        network=networks.default(jnp.tanh),
        policy=acting,
        anakin=lambda cfg, env, opt, n, torso: anakin(name, cfg, env, opt, n, torso, make_update),
        sebulba=lambda cfg, env, opt, n, torso: sebulba(name, cfg, env, opt, n, torso, make_update),
        presets=presets,
        actions=ACTIONS,
        final_params=actor_params,
    )
