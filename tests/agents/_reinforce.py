"""REINFORCE (Williams 1992) written only through the public Agent contract, for its tests."""

from __future__ import annotations

import collections
import dataclasses

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from inject_rl import loops
from inject_rl.agents import (
    Acting,
    Agent,
    AnakinLearner,
    HostCalls,
    Injectable,
    SebulbaLearner,
    learner_step,
    networks,
)
from inject_rl.optim import injected
from inject_rl.signals import EpisodeStats, sync


@dataclasses.dataclass(frozen=True)
class Config(HostCalls):
    env_id: str = "phys2d/CartPole-v1"
    total_steps: int = 4096
    seed: int = 0
    num_envs: int = 8
    rollout_len: int = 64
    gamma: float = 0.99
    learning_rate: Injectable = 1e-2
    hidden: tuple[int, ...] = (32,)
    iterations_per_call: int = 2

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_len

    def validate(self) -> Config:
        return self


# The training state: the contract needs params, opt_state and step.
State = collections.namedtuple("State", "params opt_state actor key step")


def _net(env, torso):
    fwd = lambda obs: networks.head(env.num_actions, 0.01)(torso("pi")(obs))  # noqa: E731
    return hk.without_apply_rng(hk.transform(fwd))


def acting(cfg, env, torso) -> Acting:
    net = _net(env, torso)
    return Acting(
        lambda p, obs: jnp.argmax(net.apply(p, obs), -1).astype(jnp.int32),
        lambda p, obs, k: jax.random.categorical(k, net.apply(p, obs)).astype(jnp.int32),
    )


def _learner(cfg, env, opt, torso, actor_of):
    net, pi = _net(env, torso), acting(cfg, env, torso)

    def loss_fn(params, traj):
        def to_go(g, x):  # discounted reward-to-go, cut at episode ends
            g = x[0] + cfg.gamma * g * (1.0 - x[1])
            return g, g

        zero = jnp.zeros_like(traj.reward[0])
        _, g = jax.lax.scan(to_go, zero, (traj.reward, traj.done), reverse=True)
        adv = (g - g.mean()) / (g.std() + 1e-8)
        logp = jax.nn.log_softmax(net.apply(params, traj.obs))
        loss = -jnp.mean(jnp.take_along_axis(logp, traj.action[..., None], -1)[..., 0] * adv)
        return loss, {"loss": loss, "entropy": -jnp.mean(jnp.sum(jnp.exp(logp) * logp, -1))}

    def init(device_index):
        k_params, k_env, k_run = jax.random.split(jax.random.key(cfg.seed), 3)
        params = net.init(k_params, jnp.zeros((1, *env.obs_shape)))
        actor = actor_of(jax.random.fold_in(k_env, device_index))
        key = jax.random.fold_in(k_run, device_index)
        return State(params, opt.init(params), actor, key, jnp.zeros((), jnp.int32))

    def learn(ts, traj, episodes, axis_name):
        step = ts.step + cfg.steps_per_iteration
        params, opt_state, stats = learner_step(
            loss_fn, opt, ts.params, ts.opt_state, traj, episodes=episodes, first=True,
            step=step, axis_name=axis_name,
        )  # fmt: skip
        return ts._replace(params=params, opt_state=opt_state, step=step), {**stats, **episodes}

    return init, learn, lambda p, obs, k: (pi.sample(p, obs, k), {})


def anakin(cfg, env, opt, num_devices, torso) -> AnakinLearner:
    n = cfg.num_envs // num_devices
    init, learn, act = _learner(cfg, env, opt, torso, lambda k: loops.init_actor(env, n, k))

    def iteration(ts, axis_name):
        key, k_roll = jax.random.split(ts.key)
        actor = ts.actor._replace(stats=EpisodeStats.new_window(ts.actor.stats))
        policy = lambda obs, k: act(ts.params, obs, k)  # noqa: E731
        actor, traj = loops.rollout(env, policy, actor, k_roll, cfg.rollout_len)
        episodes = sync(EpisodeStats.summary(actor.stats), axis_name)
        return learn(ts._replace(actor=actor, key=key), traj, episodes, axis_name)

    return AnakinLearner(init, iteration)


def sebulba(cfg, env, opt, num_devices, torso) -> SebulbaLearner:
    init, learn, act = _learner(cfg, env, opt, torso, lambda k: None)

    def learn_rollout(ts, rollout, axis_name):
        episodes = sync(loops.host_episode_summary(rollout), axis_name)
        return learn(ts, rollout.traj, episodes, axis_name)

    return SebulbaLearner(init, act, learn_rollout, rollout_len=cfg.rollout_len, staleness=0)


AGENT = Agent(
    name="reinforce",
    description="REINFORCE (a test agent written through the contract)",
    config=Config,
    default_optimizer=lambda cfg, factory=optax.adam, **hps: injected(
        factory, learning_rate=cfg.learning_rate, **hps
    ),
    network=networks.default(jnp.tanh),
    policy=acting,
    anakin=anakin,
    sebulba=sebulba,
    actions=("discrete",),
)
