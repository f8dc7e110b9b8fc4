"""DQN's learning: its training state and the learner both loops share (see `agents.dqn`).

Split from `agents/dqn.py` when that outgrew one file (STYLE.md "Layout and size"); `dqn`
re-exports `TrainState`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import rlax

from inject_rl import loops
from inject_rl.agents import _replay, networks
from inject_rl.agents._common import per_device
from inject_rl.agents._exploration import epsilon_schedule
from inject_rl.agents._learner import learner_step
from inject_rl.agents._replay import Experience, experience, init_replay
from inject_rl.loops import ReplayBuffer

if TYPE_CHECKING:
    from inject_rl.agents.dqn import Config


class TrainState(NamedTuple):
    """Everything one device carries between iterations."""

    params: Any
    target_params: Any
    opt_state: Any
    epsilon_state: Any  # the epsilon schedule's state
    replay: loops.ReplayBufferState  # differs per device
    actor: loops.ActorState
    key: jax.Array
    step: jax.Array  # shape=(), dtype=int32; env steps so far, all devices
    updates: jax.Array  # shape=(), dtype=int32; learner steps so far
    iteration: jax.Array  # shape=(), dtype=int32; iterations so far
    best_params: Any  # params with the best greedy evaluation so far
    best_return: jax.Array  # shape=(), dtype=float32; -inf before the first evaluation


def learner(cfg: Config, env: Any, opt: Any, num_devices: int, torso, actor_of):
    """`(net, eps, init, learn)` of either loop. `learn(ts, traj, episodes, axis_name)` stores a
    rollout (`ts.step` already counting it), takes `gradient_steps` learner steps once
    `learning_starts` env steps are stored, then updates epsilon."""
    net = networks.q_network(env.num_actions, torso)
    eps = epsilon_schedule(cfg)
    envs_per_device, batch_per_device, buffer_per_device = per_device(
        "dqn", cfg, num_devices, "num_envs", "batch_size", "buffer_size"
    )

    def init(device_index):
        k_params, k_env, k_run = jax.random.split(jax.random.key(cfg.seed), 3)
        params = net.init(k_params, jnp.zeros((1, *env.obs_shape), jnp.float32))
        actor = actor_of(jax.random.fold_in(k_env, device_index), envs_per_device)
        key, replay = jax.random.fold_in(k_run, device_index), init_replay(env, buffer_per_device)
        counts = (jnp.zeros((), jnp.int32),) * 3  # step, updates, iteration
        best = jnp.array(-jnp.inf, jnp.float32)
        state = (params, params, opt.init(params), eps.init(), replay, actor, key, *counts)
        return TrainState(*state, params, best)

    def loss_fn(params, b: Experience, q_t_value, q_t_selector):
        q_tm1 = net.apply(params, b.obs)
        td = jax.vmap(rlax.double_q_learning)(
            q_tm1, b.action, b.reward, b.discount, q_t_value, q_t_selector
        )
        loss = jnp.mean(rlax.huber_loss(td, 1.0))
        return loss, {"loss": loss, "td_error": jnp.mean(jnp.abs(td))}

    def learner_steps(ts: TrainState, episodes, axis_name):
        def one(carry, key):
            params, target, opt_state, updates, first = carry
            batch = ReplayBuffer.sample(ts.replay, key, batch_per_device)
            # Outside the gradient: the bootstrap targets are constants of the loss anyway.
            q_t = (net.apply(target, batch.next_obs), net.apply(params, batch.next_obs))
            params, opt_state, stats = learner_step(
                loss_fn, opt, params, opt_state, batch, *q_t, episodes=episodes, first=first,
                step=ts.step, axis_name=axis_name,
            )  # fmt: skip
            updates = updates + 1
            new_target = optax.incremental_update(params, target, cfg.target_tau)
            target = rlax.periodic_update(new_target, target, updates, cfg.target_update_every)
            return (params, target, opt_state, updates, jnp.zeros((), bool)), stats

        key, k_learn = jax.random.split(ts.key)
        carry = (ts.params, ts.target_params, ts.opt_state, ts.updates, jnp.ones((), bool))
        (params, target, opt_state, updates, _), stats = jax.lax.scan(
            one, carry, jax.random.split(k_learn, cfg.gradient_steps)
        )
        ts = ts._replace(
            params=params, target_params=target, opt_state=opt_state, updates=updates, key=key
        )
        return ts, {k: v.mean() for k, v in stats.items()}

    def learn(ts: TrainState, traj: loops.Transition, episodes, axis_name: str | None):
        epsilon = jnp.asarray(eps(ts.epsilon_state), jnp.float32)  # the one that acted
        ts = ts._replace(
            replay=ReplayBuffer.add(ts.replay, experience(traj, cfg.gamma, cfg.n_step))
        )
        idle = dict.fromkeys(("loss", "td_error", "grad_norm"))
        ts, stats = _replay.after_learning_starts(
            cfg.learning_starts, lambda t: learner_steps(t, episodes, axis_name), idle
        )(ts)
        # Epsilon sees the signal names opt.update sees, once per iteration: the episode
        # statistics of this iteration's env steps and the learner signals averaged over its
        # learner steps (NaN before `learning_starts`, which schedules ignore).
        signals = {**stats, **episodes, "step": ts.step}
        ts = ts._replace(
            epsilon_state=eps.update(ts.epsilon_state, **signals), iteration=ts.iteration + 1
        )
        return ts, {**signals, "hp/epsilon": epsilon}  # the optimizer's hp/*: added by `train`

    return net, eps, init, learn
