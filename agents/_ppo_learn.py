"""PPO's learning: the learner maths both loops share (see `agents.ppo`).

Split from `agents/ppo.py` when that outgrew one file (STYLE.md "Layout and size"); `ppo`
re-exports `Batch` and `make_update`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import optax
import rlax

from inject_rl import loops
from inject_rl.agents._actor_critic_policy import ActorCritic
from inject_rl.agents._learner import coefficient, learner_step

if TYPE_CHECKING:
    from inject_rl.agents.ppo import Config


class Batch(NamedTuple):
    obs: jax.Array  # [N, *obs]
    action: jax.Array  # [N] or [N, D]
    log_prob: jax.Array  # [N] behaviour log-probability
    advantage: jax.Array  # [N]
    target: jax.Array  # [N] value target


def make_update(
    cfg: Config,
    policy: ActorCritic,
    opt: optax.GradientTransformationExtraArgs,
    batch_per_device: int,
):
    """The learner maths both loops share: GAE, then `epochs` x `num_minibatches` steps.

    Returns `update(params, opt_state, traj, last_obs, episodes, step, key, axis_name) ->
    (params, opt_state, metrics)` where `traj` is a `Transition` `[T, B]` whose extras hold the
    behaviour `log_prob` and `value`, `last_obs` `[B, *obs]` the observation after the rollout,
    `episodes` the synced episode signals and `step` the env steps so far.
    """
    if batch_per_device % cfg.num_minibatches:  # Config.validate checks the global batch only
        raise ValueError(
            f"ppo: each device's batch (num_envs / devices * rollout_len = {batch_per_device}) "
            f"must be divisible by num_minibatches, got num_minibatches={cfg.num_minibatches}"
        )
    mb_size = batch_per_device // cfg.num_minibatches

    def loss_fn(params, mb: Batch, ent_coef, clip_eps):
        log_prob, entropy, value = policy.evaluate(params, mb.obs, mb.action)
        log_ratio = log_prob - mb.log_prob
        ratio = jnp.exp(log_ratio)
        adv = (mb.advantage - mb.advantage.mean()) / (mb.advantage.std() + 1e-8)
        pg_loss = rlax.clipped_surrogate_pg_loss(ratio, adv, clip_eps)
        value_loss = 0.5 * jnp.mean(jnp.square(value - mb.target))
        entropy = jnp.mean(entropy)
        loss = pg_loss + cfg.vf_coef * value_loss - ent_coef * entropy
        kl = jnp.mean(ratio - 1.0 - log_ratio)  # the k3 estimator of KL(behaviour || current)
        return loss, {"loss": loss, "value_loss": value_loss, "entropy": entropy, "kl": kl}

    def update(
        params,
        opt_state,
        traj: loops.Transition,
        last_obs,
        episodes,
        step,
        key,
        axis_name: str | None,
    ):
        # Bootstrap: from the last obs at the rollout's end, from next_obs where time ran out.
        last_value = policy.net.apply(params, last_obs).value
        next_value = policy.net.apply(params, traj.next_obs).value
        r_t = traj.reward + cfg.gamma * next_value * traj.truncated
        discount_t = cfg.gamma * (1.0 - traj.done.astype(jnp.float32))
        v_tm1 = traj.extras["value"]
        values = jnp.concatenate([v_tm1, last_value[None]], axis=0)
        gae = jax.vmap(
            rlax.truncated_generalized_advantage_estimation, in_axes=(1, 1, None, 1), out_axes=1
        )
        advantage = gae(r_t, discount_t, cfg.gae_lambda, values)
        flat = jax.tree.map(
            lambda x: x.reshape((batch_per_device, *x.shape[2:])),
            Batch(traj.obs, traj.action, traj.extras["log_prob"], advantage, advantage + v_tm1),
        )

        def minibatch(carry, mb):
            params, opt_state, first = carry
            ent_coef = coefficient(opt_state, cfg, "ent_coef")
            clip_eps = coefficient(opt_state, cfg, "clip_eps")
            params, opt_state, stats = learner_step(
                loss_fn,
                opt,
                params,
                opt_state,
                mb,
                ent_coef,
                clip_eps,
                episodes=episodes,
                first=first,
                step=step,
                axis_name=axis_name,
                sync_episodes=True,  # in every step's all-reduce: no collective of their own
            )
            # One [n] array per step, not n scalars: a scan writes each output with a kernel of
            # its own per step (issue 16 item 4); the names are the dict's, sorted.
            names[:] = sorted(stats)
            return (params, opt_state, jnp.zeros((), bool)), jnp.stack([stats[k] for k in names])

        def epoch(carry, key):
            if cfg.num_minibatches == 1:  # one minibatch: its order changes nothing
                return jax.lax.scan(minibatch, carry, jax.tree.map(lambda x: x[None], flat))
            perm = jax.random.permutation(key, batch_per_device)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape((cfg.num_minibatches, mb_size, *x.shape[1:])), flat
            )
            return jax.lax.scan(minibatch, carry, mbs)

        names: list[str] = []  # set while tracing `minibatch`
        (params, opt_state, _), stats = jax.lax.scan(
            epoch, (params, opt_state, jnp.ones((), bool)), jax.random.split(key, cfg.epochs)
        )
        # Every step synced the same episode statistics: report the first step's; the rest are
        # means over the steps (`step` and `hp/*` are added for every agent by `train`).
        metrics = {
            k: stats[0, 0, i] if k in episodes else stats[..., i].mean()
            for i, k in enumerate(names)
        }
        return params, opt_state, metrics

    return update
