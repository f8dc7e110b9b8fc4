"""What the on-policy actor-critic agents (PPO, IMPALA) share: the policy over an env's action
space, its acting functions, and the learners of both loops around an agent's `update`.

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

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import distrax
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from inject_rl import envs, loops
from inject_rl.agents import networks
from inject_rl.agents._common import per_device
from inject_rl.agents._contract import Acting, Agent, AnakinLearner, SebulbaLearner
from inject_rl.signals import (
    EpisodeStats,
    RewardScale,
    RewardScaleState,
    RunningMeanStd,
    RunningMeanStdState,
)

# Logit of the padding that lines MultiDiscrete components of different sizes up in one array.
_PAD_LOGIT = -1e9


def _categorical_sample(logits: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(action int32 [...], log_prob [...])`: bitwise what `distrax.Categorical(logits)
    .sample_and_log_prob(seed=key)` returns for finite logits, in fewer kernels per env step.

    Acting runs once per env step, so its kernels count (issue 16 item 4: our rollout step had
    10 more than a minimal PPO's). distrax also computes the softmax to check every probability
    is finite and non-negative (a draw of -1 otherwise) and gathers the log-probability with a
    one-hot product; here the draw is the same `jax.random.categorical` on the same normalised
    logits and key (shape `(1, ...)`, as distrax draws one sample), the log-probability a
    gather. Non-finite logits are left to the divergence checks of the loss and params.
    """
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # distrax's normalised logits
    draw = jax.random.categorical(key, log_probs, axis=-1, shape=(1, *logits.shape[:-1]))[0]
    action = draw.astype(jnp.int32)
    return action, jnp.take_along_axis(log_probs, action[..., None], axis=-1)[..., 0]


class Output(NamedTuple):
    """Policy parameters and value for a batch of observations."""

    # [B, A] (Discrete); [B, sum(nvec)] (MultiDiscrete, components concatenated); else the
    # Gaussian mean [B, D]
    logits: jax.Array
    log_std: jax.Array  # [D] state-independent log std (continuous); shape (0,) when discrete
    value: jax.Array  # [B]


class TrainState(NamedTuple):
    """Everything one device carries between iterations."""

    params: Any
    opt_state: Any
    actor: loops.ActorState | None  # in-graph envs (anakin); None on the host loop
    key: jax.Array
    step: jax.Array  # shape=(), dtype=int32; env steps so far, all devices
    obs_norm: RunningMeanStdState | None = None  # normalize_obs: identical on every device
    reward_scale: RewardScaleState | None = None  # normalize_reward: returns of this device's envs


class ActorCritic:
    """Separate actor and critic networks (each a torso and a head) for an env's action space:
    a categorical policy for `Discrete`; for `MultiDiscrete` a factorised categorical, one
    independent categorical per component (log-probability and entropy summed over the
    components, greedy = each component's argmax; as cleanrl's `ppo_multidiscrete`); a
    diagonal Gaussian with a learned state-independent log std, starting at `log_std_init`, for
    `Box` (unsquashed; the env clips actions to its bounds)."""

    def __init__(self, env: Any, torso: networks.TorsoFactory, log_std_init: float = 0.0):
        kind = envs.action_kind(env.action_space)
        self.discrete, self.multi_discrete = kind == envs.DISCRETE, kind == envs.MULTI_DISCRETE
        if self.discrete:
            out = env.num_actions
        elif self.multi_discrete:
            out = self._init_components(env.action_space)
        else:
            out = int(math.prod(env.action_shape))

        def forward(obs: jax.Array) -> Output:
            # Head names sort right after their torso's: params flatten in the order they did
            # when each network was one MLP module, so results stay bitwise as before.
            logits = networks.head(out, 0.01, name="actor_out")(torso("actor")(obs))
            value = networks.head(1, 1.0, name="critic_out")(torso("critic")(obs))[..., 0]
            if self.discrete:
                log_std = jnp.zeros((0,), jnp.float32)
            else:
                init = hk.initializers.Constant(log_std_init)
                log_std = hk.get_parameter("log_std", (out,), init=init)
            return Output(logits, log_std, value)

        self.net = hk.without_apply_rng(hk.transform(forward))

    def apply(self, params, obs) -> Output:
        """The network's output; `params` may carry observation statistics
        (`networks.with_obs_norm`), which then normalise `obs` first."""
        return self.net.apply(*networks.normalized_input(params, obs))

    def _init_components(self, space: Any) -> int:
        """Static gather of the concatenated component logits into `[K, max_n]`, padded."""
        nvec = np.asarray(space.nvec, np.int64).reshape(-1)
        self.action_shape, self.num_components = tuple(space.shape), len(nvec)
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        width = np.arange(int(nvec.max()))
        self.component_mask = width < nvec[:, None]  # [K, max_n]
        self.component_index = np.where(self.component_mask, offsets[:, None] + width, 0)
        return int(nvec.sum())

    def dist(self, out: Output):
        if self.discrete:
            return distrax.Categorical(logits=out.logits)
        if self.multi_discrete:
            logits = self._component_logits(out)
            return distrax.Independent(distrax.Categorical(logits=logits), 1)
        scale = jnp.broadcast_to(jnp.exp(out.log_std), out.logits.shape)
        return distrax.MultivariateNormalDiag(out.logits, scale)

    def _component_logits(self, out: Output) -> jax.Array:
        """`[..., K, max_n]` logits of the MultiDiscrete components; the padding gets
        probability exactly 0 (exp underflows), so it is never sampled, never the argmax, and
        adds 0 to the entropy."""
        logits = out.logits[..., self.component_index]
        return jnp.where(self.component_mask, logits, _PAD_LOGIT)

    def _components(self, out: Output, action: jax.Array) -> jax.Array:
        """`[..., *action_shape]` MultiDiscrete actions as `[..., K]`."""
        return action.reshape((*out.logits.shape[:-1], self.num_components))

    def _action(self, out: Output, action: jax.Array) -> jax.Array:
        """`[..., K]` component actions as `[..., *action_shape]` int32."""
        return action.reshape((*out.logits.shape[:-1], *self.action_shape)).astype(jnp.int32)

    def sample(self, params, obs, key):
        out = self.apply(params, obs)
        if self.discrete:
            action, log_prob = _categorical_sample(out.logits, key)
            return action, {"log_prob": log_prob, "value": out.value}
        action, log_prob = self.dist(out).sample_and_log_prob(seed=key)
        if self.multi_discrete:
            action = self._action(out, action)
        action = action.astype(jnp.int32) if self.discrete else action
        return action, {"log_prob": log_prob, "value": out.value}

    def evaluate(self, params, obs, action):
        out = self.apply(params, obs)
        dist = self.dist(out)
        if self.multi_discrete:
            action = self._components(out, action)
        return dist.log_prob(action), dist.entropy(), out.value

    def greedy(self, params, obs):
        out = self.apply(params, obs)
        if self.multi_discrete:
            return self._action(out, jnp.argmax(self._component_logits(out), -1))
        return jnp.argmax(out.logits, -1).astype(jnp.int32) if self.discrete else out.logits


def acting(cfg: Any, env: Any, torso: networks.TorsoFactory) -> Acting:
    policy = ActorCritic(env, torso, cfg.log_std_init)
    return Acting(policy.greedy, lambda p, obs, key: policy.sample(p, obs, key)[0])


# The action spaces of `ActorCritic`: an unbounded Box too (the Gaussian needs no bounds).
ACTIONS = (envs.DISCRETE, envs.MULTI_DISCRETE, envs.CONTINUOUS, envs.UNBOUNDED)

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
