"""IMPALA: actor-critic with V-trace off-policy correction, on either loop.

Espeholt et al. 2018. Any gymnasium id runs on the sebulba loop (host envs on actor threads,
pmapped learner), where the actors act with params one update stale (`staleness=1`) while the
learner trains on the previous rollout, and V-trace corrects for the lag; a `phys2d/*` id runs
on the anakin loop (in-graph envs, on-policy, so V-trace's ratios are 1). The loop is chosen by
`inject_rl.envs.is_jax_env`.

Maths from rlax, as in the Haiku IMPALA example: `vtrace_td_error_and_advantage` vmapped over
the batch axis of `[T, B]` data, a policy-gradient term on V-trace's (stopped) advantages, a
value term on its errors and an entropy bonus. A time-limit truncation bootstraps from the true
final observation: `r_t + gamma * V(next_obs)` with the trace cut there (`discount_t = 0`).

Every learner step passes its signals (`loss`, `value_loss`, `entropy`, `kl`, `grad_norm`,
`episode_return`, `episode_length`, `episode_count`, `step`) to `opt.update` as `extra_args`
through the one learner step of `inject_rl.agents._learner`; the learners of both loops are the
actor-critic ones PPO uses (`inject_rl.agents._actor_critic`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
import rlax

from inject_rl import loops
from inject_rl.agents import _actor_critic
from inject_rl.agents._actor_critic_policy import ActorCritic
from inject_rl.agents._common import HostCalls, check_config, check_injectable
from inject_rl.agents._contract import Injectable
from inject_rl.agents._learner import coefficient, learner_step
from inject_rl.optim import carried, injected
from inject_rl.schedules import progress


@dataclasses.dataclass(frozen=True)
class Config(HostCalls):
    """IMPALA settings; defaults solve CartPole-v1 (host envs) within 3e5 steps."""

    env_id: str = "CartPole-v1"  # any gymnasium id; phys2d/* ids run on the anakin loop
    total_steps: int = 300_000  # env steps (rounded up to whole host calls)
    seed: int = 0  # fixes the whole run
    num_envs: int = 16  # envs in total, split evenly over devices (and actor threads)
    rollout_len: int = 20  # unroll length T: steps per env per learner step
    gamma: float = 0.99  # discount
    vtrace_lambda: float = 1.0  # V-trace lambda
    clip_rho_threshold: float = 1.0  # V-trace rho-bar (value targets)
    clip_pg_rho_threshold: float = 1.0  # V-trace rho-bar for the policy-gradient advantage
    ent_coef: Injectable = 0.01  # entropy bonus weight (hp/ent_coef)
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global-norm gradient clip of the default optimizer
    learning_rate: Injectable | None = None  # None: progress on episode_return
    lr_init: float = 2e-3  # default schedule: learning rate while returns are low
    lr_final: float = 5e-4  # ... and once the smoothed return reaches lr_return_high
    lr_return_low: float = 100.0  # default schedule: return up to which lr_init applies
    lr_return_high: float = 500.0  # default schedule: return at which lr_final applies
    hidden: tuple[int, ...] = (64, 64)  # MLP widths of actor and critic
    staleness: int = 1  # host loop: rollout i uses the params of iteration i - staleness
    num_actor_threads: int = 1  # host loop: actor threads, each stepping num_envs / threads
    vectorization: str = "sync"  # host loop: gymnasium vector env, "sync" or "async" (subprocesses)
    iterations_per_call: int = 10  # learner steps per host call (log interval)
    # Running statistics, synced over devices, kept in the training state (issue 13 item 2):
    normalize_obs: bool = False  # standardise observations (clip +-10); saved with the params
    normalize_reward: bool = False  # divide rewards by the running std of the discounted return
    log_std_init: float = 0.0  # Box actions: initial log std of the Gaussian policy

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_len

    def validate(self) -> Config:
        check_config(
            self,
            positive_ints="total_steps num_envs rollout_len num_actor_threads iterations_per_call",
            positive="lr_init lr_final max_grad_norm clip_rho_threshold clip_pg_rho_threshold",
            nonneg="vf_coef",
            unit="gamma vtrace_lambda",
            nonneg_ints="staleness",
        )
        check_injectable(self, ent_coef=(0.0, True), learning_rate=(0.0, False))
        if not self.lr_return_low < self.lr_return_high:
            raise ValueError(
                "impala: lr_return_low must be below lr_return_high, got "
                f"{self.lr_return_low=}, {self.lr_return_high=}"
            )
        return self


# Tuned per env; `config_for(env_id)` starts from these.
PRESETS: dict[str, dict[str, Any]] = {
    "phys2d/CartPole-v1": {},
}


def default_optimizer(
    cfg: Config, factory: Callable = optax.adam, **hyperparams: Any
) -> optax.GradientTransformationExtraArgs:
    """`factory` (Adam) whose learning rate falls log-linearly from `lr_init` to `lr_final` as
    the smoothed episode return rises from `lr_return_low` to `lr_return_high` (`progress`),
    so a solved policy is fine-tuned gently instead of forgotten; chained with the injected
    `ent_coef`.

    `hyperparams` (e.g. `b1=plateau(...)`) go to `factory`; Adam's `eps` defaults to 1e-5.
    """
    lr = cfg.learning_rate
    if lr is None:
        lr = progress(
            cfg.lr_init,
            cfg.lr_final,
            signal="episode_return",
            low=cfg.lr_return_low,
            high=cfg.lr_return_high,
            smoothing=0.9,
            interpolation="log",
        )
    if factory is optax.adam:
        hyperparams.setdefault("eps", 1e-5)
    return optax.chain(
        injected(factory, learning_rate=lr, clip=cfg.max_grad_norm, **hyperparams),
        carried(ent_coef=cfg.ent_coef),
    )


def make_update(
    cfg: Config, policy: ActorCritic, opt: optax.GradientTransformationExtraArgs, batch: int
):
    """The learner step both loops share.

    Returns `update(params, opt_state, traj, last_obs, episodes, step, key, axis_name) ->
    (params, opt_state, metrics)`: one learner step on the whole rollout (`batch` steps per
    device; `key` unused); `traj` is a `Transition` `[T, B]` whose extras hold the behaviour
    `log_prob`, `last_obs` `[B, *obs]` the observation after the rollout.
    """
    del batch
    vtrace = jax.vmap(
        functools.partial(
            rlax.vtrace_td_error_and_advantage,
            lambda_=cfg.vtrace_lambda,
            clip_rho_threshold=cfg.clip_rho_threshold,
            clip_pg_rho_threshold=cfg.clip_pg_rho_threshold,
        ),
        in_axes=1,
        out_axes=1,
    )

    def loss_fn(params, traj: loops.Transition, last_obs, ent_coef):
        log_prob, entropy, v_tm1 = policy.evaluate(params, traj.obs, traj.action)  # [T, B]
        last_value = policy.net.apply(params, last_obs).value  # [B]
        next_value = policy.net.apply(params, traj.next_obs).value  # [T, B]
        v_t = jnp.concatenate([v_tm1[1:], last_value[None]], axis=0)
        # Truncation: bootstrap from the true final observation, and cut the trace there.
        r_t = traj.reward + cfg.gamma * jax.lax.stop_gradient(next_value) * traj.truncated
        discount_t = cfg.gamma * (1.0 - traj.done.astype(jnp.float32))
        log_rho = jax.lax.stop_gradient(log_prob - traj.extras["log_prob"])
        rho_tm1 = jnp.exp(log_rho)
        out = vtrace(v_tm1, v_t, r_t, discount_t, rho_tm1)
        pg_loss = -jnp.mean(log_prob * jax.lax.stop_gradient(out.pg_advantage))
        value_loss = 0.5 * jnp.mean(jnp.square(out.errors))
        entropy = jnp.mean(entropy)
        loss = pg_loss + cfg.vf_coef * value_loss - ent_coef * entropy
        kl = jnp.mean(rho_tm1 - 1.0 - log_rho)  # k3 estimate of KL(behaviour || current)
        return loss, {"loss": loss, "value_loss": value_loss, "entropy": entropy, "kl": kl}

    def update(params, opt_state, traj, last_obs, episodes, step, key, axis_name: str | None):
        del key
        params, opt_state, stats = learner_step(
            loss_fn,
            opt,
            params,
            opt_state,
            traj,
            last_obs,
            coefficient(opt_state, cfg, "ent_coef"),
            episodes=episodes,
            first=True,
            step=step,
            axis_name=axis_name,
            sync_episodes=True,  # in the gradients' all-reduce; `stats` holds the synced ones
        )
        return params, opt_state, stats  # `step` and `hp/*`: added for every agent by `train`

    return update


AGENT = _actor_critic.agent(
    "impala",
    "IMPALA actor-critic with V-trace; host envs (sebulba) or phys2d",
    Config,
    default_optimizer,
    make_update,
    PRESETS,
)
train, evaluate, config_for = AGENT.train, AGENT.evaluate, AGENT.config_for
