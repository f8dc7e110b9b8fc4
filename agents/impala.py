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
`episode_return`, `episode_length`, `episode_count`, `step`) to `opt.update` as `extra_args`,
reduced across devices with `inject_rl.signals.sync`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import rlax

from inject_rl.agents import _common
from inject_rl.agents.ppo import ActorCriticPolicy
from inject_rl import envs, loops
from inject_rl.optim import carried, current, injected
from inject_rl.schedules import progress
from inject_rl.signals import EpisodeStats, sync


@dataclasses.dataclass(frozen=True)
class Config(_common.HostCalls):
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
    ent_coef: Any = 0.01  # float | StatefulSchedule; entropy bonus weight (hp/ent_coef)
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global-norm gradient clip of the default optimizer
    learning_rate: Any = None  # float | StatefulSchedule; None: progress on episode_return
    lr_init: float = 2e-3  # default schedule: learning rate while returns are low
    lr_final: float = 5e-4  # ... and once the smoothed return reaches lr_return_high
    lr_return_low: float = 100.0  # default schedule: return up to which lr_init applies
    lr_return_high: float = 500.0  # default schedule: return at which lr_final applies
    hidden: tuple[int, ...] = (64, 64)  # MLP widths of actor and critic
    staleness: int = 1  # host loop: rollout i uses the params of iteration i - staleness
    num_actor_threads: int = 1  # host loop: actor threads, each stepping num_envs / threads
    iterations_per_call: int = 10  # learner steps per host call (log interval)

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_len

    def validate(self) -> Config:
        _common.check_config(
            self,
            positive_ints=(
                "total_steps",
                "num_envs",
                "rollout_len",
                "num_actor_threads",
                "iterations_per_call",
            ),
            positive=(
                "lr_init",
                "lr_final",
                "max_grad_norm",
                "clip_rho_threshold",
                "clip_pg_rho_threshold",
            ),
            nonneg=("vf_coef",),
            unit=("gamma", "vtrace_lambda"),
        )
        _common.check_injectable(self, ent_coef=(0.0, True))
        if (
            isinstance(self.staleness, bool)
            or not isinstance(self.staleness, int)
            or (self.staleness < 0)
        ):
            raise ValueError(f"impala: staleness must be an integer >= 0, got {self.staleness=!r}")
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


def config_for(env_id: str, **overrides: Any) -> Config:
    """The preset for `env_id` (defaults otherwise), with `overrides`."""
    return _common.replace(Config(env_id=env_id, **PRESETS.get(env_id, {})), **overrides)


class TrainState(NamedTuple):
    """Everything one learner device carries between iterations."""

    params: Any
    opt_state: Any
    actor: loops.ActorState | None  # in-graph envs (anakin); None on the host loop
    key: jax.Array
    step: jax.Array  # shape=(), dtype=int32; env steps so far, all devices


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


def make_update(cfg: Config, policy: ActorCriticPolicy, opt: optax.GradientTransformationExtraArgs):
    """The learner step both loops share.

    Returns `update(params, opt_state, traj, last_obs, episodes, step, axis_name) -> (params,
    opt_state, metrics)`; `traj` is a `Transition` `[T, B]` whose extras hold the behaviour
    `log_prob`, `last_obs` `[B, *obs]` the observation after the rollout.
    """
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

    def update(params, opt_state, traj, last_obs, episodes, step, axis_name: str | None):
        ent_coef = current(opt_state, "ent_coef", _constant(cfg.ent_coef))
        grads, aux = jax.grad(loss_fn, has_aux=True)(params, traj, last_obs, ent_coef)
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
        aux = sync(aux, axis_name)
        signals = {**aux, **episodes, "grad_norm": optax.tree.norm(grads), "step": step}
        updates, opt_state = opt.update(grads, opt_state, params, **signals)
        params = optax.apply_updates(params, updates)
        return params, opt_state, {**signals, **_common.hp_metrics(opt_state)}

    return update


def _constant(x):
    if isinstance(x, optax.schedules.StatefulSchedule) or callable(x):
        raise ValueError(
            "impala: an ent_coef schedule needs the optimizer to carry it; chain "
            "inject_rl.optim.carried(ent_coef=...) into your optimizer"
        )
    return x


def make_learner(
    cfg: Config, env: envs.JaxEnv, opt: optax.GradientTransformationExtraArgs, num_devices: int
):
    """`(init, iteration, policy)` for `inject_rl.loops.run` (anakin)."""
    (envs_per_device,) = _common.per_device("impala", cfg, num_devices, "num_envs")
    policy = ActorCriticPolicy(env, cfg.hidden)
    update = make_update(cfg, policy, opt)

    def init(device_index):
        k_params, k_env, k_run = jax.random.split(jax.random.key(cfg.seed), 3)
        params = policy.net.init(k_params, jnp.zeros((1, *env.obs_shape), jnp.float32))
        actor = loops.init_actor(env, envs_per_device, jax.random.fold_in(k_env, device_index))
        return TrainState(
            params,
            opt.init(params),
            actor,
            jax.random.fold_in(k_run, device_index),
            jnp.zeros((), jnp.int32),
        )

    def iteration(ts: TrainState, axis_name: str | None):
        key, k_roll = jax.random.split(ts.key)
        actor = ts.actor._replace(stats=EpisodeStats.new_window(ts.actor.stats))
        actor, traj = loops.rollout(
            env, lambda obs, k: policy.sample(ts.params, obs, k), actor, k_roll, cfg.rollout_len
        )
        step = ts.step + cfg.steps_per_iteration
        episodes = sync(EpisodeStats.summary(actor.stats), axis_name)
        params, opt_state, metrics = update(
            ts.params, ts.opt_state, traj, actor.obs, episodes, step, axis_name
        )
        return TrainState(params, opt_state, actor, key, step), metrics

    return init, iteration, policy


def make_host_learner(
    cfg: Config, env: envs.HostEnv, opt: optax.GradientTransformationExtraArgs, num_devices: int
):
    """`(init, act, learn, policy)` for `inject_rl.loops.run_sebulba` (host envs)."""
    _common.per_device("impala", cfg, num_devices, "num_envs")
    policy = ActorCriticPolicy(env, cfg.hidden)
    update = make_update(cfg, policy, opt)

    def init(device_index):
        k_params, _, k_run = jax.random.split(jax.random.key(cfg.seed), 3)
        params = policy.net.init(k_params, jnp.zeros((1, *env.obs_shape), jnp.float32))
        return TrainState(
            params,
            opt.init(params),
            None,
            jax.random.fold_in(k_run, device_index),
            jnp.zeros((), jnp.int32),
        )

    def learn(ts: TrainState, rollout: loops.HostRollout, axis_name: str | None):
        step = ts.step + cfg.steps_per_iteration
        episodes = sync(loops.host_episode_summary(rollout), axis_name)
        params, opt_state, metrics = update(
            ts.params, ts.opt_state, rollout.traj, rollout.last_obs, episodes, step, axis_name
        )
        return ts._replace(params=params, opt_state=opt_state, step=step), metrics

    return init, policy.sample, learn, policy


def train(
    cfg: Config = Config(),
    *,
    optimizer=None,
    num_devices: int | None = None,
    callback: Callable[..., None] | None = None,
    resume: tuple[Any, int] | None = None,
    program_key: str | None = None,
) -> _common.TrainResult:
    """Trains IMPALA: on the sebulba loop for a host id, on the anakin loop for `phys2d/*`.

    Args:
      cfg: the configuration.
      optimizer: any `optax.GradientTransformationExtraArgs` (default: `default_optimizer`);
        `update` receives every signal as keyword `extra_args` on every learner step.
      num_devices: learner devices to `pmap` over (None: 1; all global devices in a
        multi-process run on the host loop).
      callback: `callback(call_index, metrics, state)` after every host call.
      resume: `(state, next_call)` to continue from a checkpoint (anakin: bitwise as if
        uninterrupted; host loop: the learner continues bitwise, the envs restart).
      program_key: on one device, names this run's compiled programs so that a later run
        with the same key loads them instead of tracing (`inject_rl.loops.run`).

    Returns:
      A `TrainResult`.
    """
    cfg.validate()
    opt = default_optimizer(cfg) if optimizer is None else optimizer
    _common.check_optimizer(opt)
    res = _common.run_loop(
        cfg,
        opt,
        make_learner,
        make_host_learner,
        num_devices=num_devices,
        callback=callback,
        resume=resume,
        program_key=program_key,
    )
    return _common.result(cfg, res)


def evaluate(result: _common.TrainResult, *, episodes: int = 20, seed: int = 0) -> float:
    """Mean return of `episodes` greedy (argmax / mean action) episodes."""
    cfg = result.config
    if envs.is_jax_env(cfg.env_id):
        env = envs.make(cfg.env_id)
        policy = ActorCriticPolicy(env, cfg.hidden)
        fn = jax.jit(
            lambda p, k: loops.evaluate_policy(env, lambda obs: policy.greedy(p, obs), episodes, k)
        )
        return float(fn(result.params, jax.random.key(seed)))
    policy = ActorCriticPolicy(envs.host_spaces(cfg.env_id), cfg.hidden)
    greedy = jax.jit(policy.greedy)
    return loops.evaluate_host_policy(
        cfg.env_id, lambda obs: greedy(result.params, obs), episodes, seed
    )
