"""SAC's learning: its training state and the learner both loops share (see `agents.sac`).

Split from `agents/sac.py` when that outgrew one file (STYLE.md "Layout and size"); `sac`
re-exports `TrainState` and `make_learn`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from inject_rl import loops
from inject_rl.agents import _replay
from inject_rl.agents._learner import learner_step
from inject_rl.agents._replay import Experience
from inject_rl.agents._squashed_gaussian import SquashedGaussianPolicy
from inject_rl.loops import ReplayBuffer
from inject_rl.signals import RewardScale, RewardScaleState, RunningMeanStd, RunningMeanStdState

if TYPE_CHECKING:
    from inject_rl.agents.sac import Config


class TrainState(NamedTuple):
    """Everything one device carries between iterations."""

    params: Any  # {"actor", "critic", "alpha": {"log_alpha"}}
    target_critic: Any  # Polyak average of params["critic"]
    opt_state: Any
    replay: loops.ReplayBufferState  # differs per device
    actor: loops.ActorState | None  # in-graph envs (anakin); None on the host loop
    key: jax.Array
    step: jax.Array  # shape=(), dtype=int32; env steps so far, all devices
    obs_norm: RunningMeanStdState | None = None  # normalize_obs: identical on every device
    reward_scale: RewardScaleState | None = None  # normalize_reward: returns of this device's envs


def make_learn(
    cfg: Config,
    policy: SquashedGaussianPolicy,
    opt: optax.GradientTransformationExtraArgs,
    batch_per_device: int,
):
    """`learn(ts, new, episodes, axis_name) -> (ts, metrics)`: adds `new` (an `Experience`
    batch `[N]`) to the replay buffer, then `gradient_steps` learner steps once the step count
    reaches `learning_starts`. `ts.step` must already count the new steps."""
    target_entropy = -float(policy.dim) if cfg.target_entropy is None else cfg.target_entropy
    sg = jax.lax.stop_gradient

    def loss_fn(params, target_critic, b: Experience, key):
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(params["alpha"]["log_alpha"])
        flat = b.action.reshape((b.action.shape[0], -1))
        # Critics: soft clipped-double-Q targets from the target critics.
        next_action, next_log_prob = policy.sample(sg(params["actor"]), b.next_obs, k_next)
        q1_t, q2_t = policy.critic.apply(target_critic, b.next_obs, next_action)
        v_t = jnp.minimum(q1_t, q2_t) - sg(alpha) * next_log_prob
        target = sg(b.reward + b.discount * v_t)
        q1, q2 = policy.critic.apply(params["critic"], b.obs, flat)
        td = target - q1
        value_loss = 0.5 * (jnp.mean(jnp.square(td)) + jnp.mean(jnp.square(target - q2)))
        # Actor: maximise the soft value under the (fixed) critics.
        action, log_prob = policy.sample(params["actor"], b.obs, k_pi)
        q1_pi, q2_pi = policy.critic.apply(sg(params["critic"]), b.obs, action)
        actor_loss = jnp.mean(sg(alpha) * log_prob - jnp.minimum(q1_pi, q2_pi))
        # Temperature: towards the target entropy.
        alpha_loss = -jnp.mean(alpha * sg(log_prob + target_entropy))
        loss = value_loss + actor_loss + alpha_loss
        return loss, {
            "loss": loss,
            "value_loss": value_loss,
            "entropy": -jnp.mean(log_prob),
            "td_error": jnp.mean(jnp.abs(td)),
            "alpha": alpha,
        }

    def learner_steps(ts: TrainState, episodes, axis_name):
        def one(carry, key):
            params, target, opt_state, first = carry
            k_sample, k_loss = jax.random.split(key)
            batch = _normalized(ts, ReplayBuffer.sample(ts.replay, k_sample, batch_per_device))
            params, opt_state, stats = learner_step(
                loss_fn,
                opt,
                params,
                opt_state,
                target,
                batch,
                k_loss,
                episodes=episodes,
                first=first,
                step=ts.step,
                axis_name=axis_name,
            )
            target = optax.incremental_update(params["critic"], target, cfg.tau)
            return (params, target, opt_state, jnp.zeros((), bool)), stats

        key, k_learn = jax.random.split(ts.key)
        carry = (ts.params, ts.target_critic, ts.opt_state, jnp.ones((), bool))
        (params, target, opt_state, _), stats = jax.lax.scan(
            one, carry, jax.random.split(k_learn, cfg.gradient_steps)
        )
        ts = ts._replace(params=params, target_critic=target, opt_state=opt_state, key=key)
        return ts, {k: v.mean() for k, v in stats.items()}

    idle = dict.fromkeys(("loss", "value_loss", "entropy", "td_error", "grad_norm"))
    idle["alpha"] = lambda ts: jnp.exp(ts.params["alpha"]["log_alpha"])

    def learn(ts: TrainState, new: Experience, episodes, axis_name: str | None):
        ts = ts._replace(replay=ReplayBuffer.add(ts.replay, new))
        ts, stats = _replay.after_learning_starts(
            cfg.learning_starts, lambda t: learner_steps(t, episodes, axis_name), idle
        )(ts)
        return ts, {**stats, **episodes}  # `step` and `hp/*`: added for every agent by `train`

    return learn


def _normalized(ts: TrainState, b: Experience) -> Experience:
    """A replayed batch as the learner trains on it: observations normalised and rewards
    scaled by the current statistics (when the run keeps them)."""
    if ts.reward_scale is not None:
        b = b._replace(reward=RewardScale.scale(ts.reward_scale, b.reward))
    if ts.obs_norm is not None:
        norm = lambda x: RunningMeanStd.normalize(ts.obs_norm, x)  # noqa: E731
        b = b._replace(obs=norm(b.obs), next_obs=norm(b.next_obs))
    return b
