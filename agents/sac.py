"""SAC (soft actor-critic) with a learned temperature, for continuous actions, on either loop.

Haarnoja et al. 2018 ("SAC: algorithms and applications"): a tanh-squashed Gaussian actor,
twin Q critics with Polyak-averaged targets (clipped double Q), and the temperature alpha
learned towards a target entropy of `-action_dim`. Any gymnasium id with a Box action space runs
on the sebulba loop (host envs, `staleness=1`: the actor collects the next steps while the
learner trains), a `phys2d/*` id on the anakin loop. Replay: `inject_rl.agents._replay`.

**Optimizers.** Params are one dict `{"actor", "critic", "alpha"}` and one optimizer updates
them: the three losses are summed with stop-gradients so that each part only gets its own
loss's gradient, and every learner step makes exactly one `opt.update(grads, opt_state, params,
**signals)` call. `default_optimizer` partitions the dict over three injected Adams
(`hp/actor/learning_rate`, `hp/critic/learning_rate`, `hp/alpha/learning_rate`; each a number
or a `StatefulSchedule`). `optimizer=` replaces all three: use `optax.partition` with
`param_labels` to treat the parts differently, as `default_optimizer` does.

**Normalisation** (`normalize_obs`, `normalize_reward`; SB3's VecNormalize with an off-policy
agent): the replay buffer keeps raw observations and rewards; each iteration merges its new
observations and discounted returns into running statistics (synced over devices, in the
training state), then the learner steps normalise the sampled observations and scale the sampled
rewards by the current statistics. The actor acts on observations normalised the same way; the
run's params carry the statistics (`networks.with_obs_norm`), so a loaded policy does too.

Signals per learner step (`inject_rl.agents._learner`): `loss`, `value_loss` (critic), `entropy`
(-E log pi), `td_error`, `grad_norm`, the episode statistics and `step`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from inject_rl import loops
from inject_rl.agents import _replay, networks
from inject_rl.agents._common import HostCalls, check_config, check_injectable, per_device
from inject_rl.agents._contract import Acting, Agent, AnakinLearner, Injectable, SebulbaLearner
from inject_rl.agents._replay import experience, init_replay
from inject_rl.agents._sac_learn import TrainState, make_learn
from inject_rl.agents._squashed_gaussian import SquashedGaussianPolicy
from inject_rl.optim import injected
from inject_rl.signals import EpisodeStats, RewardScale, RunningMeanStd, sync


@dataclasses.dataclass(frozen=True)
class Config(HostCalls):
    """SAC settings; defaults reach >= -250 on Pendulum-v1 (host envs) within 3e4 steps."""

    env_id: str = "Pendulum-v1"  # any gymnasium id with a Box action space
    total_steps: int = 30_000  # env steps (rounded up to whole host calls)
    seed: int = 0  # fixes the whole run
    num_envs: int = 4  # envs in total, split evenly over devices
    train_every: int = 8  # steps per env per iteration, before its learner steps
    gradient_steps: int = 32  # learner steps per iteration (default: one per env step)
    batch_size: int = 256  # transitions per learner step in total, split over devices
    buffer_size: int = 100_000  # replay capacity in total, split over devices
    learning_starts: int = 1_000  # env steps of uniform random actions before learning
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics
    actor_lr: Injectable = 3e-4  # hp/actor/learning_rate
    critic_lr: Injectable = 1e-3  # hp/critic/learning_rate
    alpha_lr: Injectable = 1e-3  # hp/alpha/learning_rate
    init_alpha: float = 1.0  # initial temperature
    target_entropy: float | None = None  # None: -action_dim
    hidden: tuple[int, ...] = (64, 64)  # MLP widths of the actor and each critic
    staleness: int = 1  # host loop: iteration i acts with the params of iteration i - staleness
    vectorization: str = "sync"  # host loop: gymnasium vector env, "sync" or "async" (subprocesses)
    iterations_per_call: int = 50  # iterations per host call (log interval)
    # Running statistics, synced over devices, kept in the training state (issue 13 item 2):
    normalize_obs: bool = False  # standardise observations (clip +-10); saved with the params
    normalize_reward: bool = False  # divide rewards by the running std of the discounted return

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.train_every

    def validate(self) -> Config:
        check_config(
            self,
            positive_ints="total_steps num_envs train_every gradient_steps batch_size "
            "buffer_size iterations_per_call",
            nonneg_ints="learning_starts staleness",
            positive="init_alpha tau",  # tau = 0: the target critics never move
            unit="gamma tau",
        )
        check_injectable(self, actor_lr=(0.0, False), critic_lr=(0.0, False), alpha_lr=(0.0, False))
        if self.target_entropy is not None and not (
            isinstance(self.target_entropy, numbers.Real) and math.isfinite(self.target_entropy)
        ):
            raise ValueError(
                f"sac: target_entropy must be None or finite, got {self.target_entropy=!r}"
            )
        _replay.check_buffer(self)
        return self


# Tuned per env; `config_for(env_id)` starts from these.
PRESETS: dict[str, dict[str, Any]] = {}


def param_labels(params: Any) -> dict[str, str]:
    """`{"actor": "actor", "critic": "critic", "alpha": "alpha"}`: labels for `optax.partition`."""
    return {k: k for k in params}


def default_optimizer(
    cfg: Config, factory: Callable = optax.adam, **hyperparams: Any
) -> optax.GradientTransformationExtraArgs:
    """Three injected `factory` (Adam) optimizers, one per part of the params
    (`optax.partition`), with learning rates `actor_lr`, `critic_lr` and `alpha_lr`.

    `hyperparams` (e.g. `b1=...`) go to all three.
    """
    return optax.partition(
        {
            part: injected(factory, learning_rate=lr, **hyperparams)
            for part, lr in (
                ("actor", cfg.actor_lr),
                ("critic", cfg.critic_lr),
                ("alpha", cfg.alpha_lr),
            )
        },
        param_labels,
    )


def _observe(cfg: Config, ts: TrainState, traj: loops.Transition, axis_name) -> TrainState:
    """`ts` with the new steps `[T, B]` merged into its statistics (before learning on them)."""
    if ts.obs_norm is not None:
        ts = ts._replace(obs_norm=RunningMeanStd.update(ts.obs_norm, traj.obs, axis_name))
    if ts.reward_scale is not None:
        scale = RewardScale.update(ts.reward_scale, traj.reward, traj.done, cfg.gamma, axis_name)
        ts = ts._replace(reward_scale=scale)
    return ts


def _actor_view(cfg: Config, ts: TrainState):
    """What the behaviour policy (`explore`) gets: the actor's params (carrying the observation
    statistics, if any) and whether learning has started."""
    actor = networks.with_obs_norm(ts.params["actor"], ts.obs_norm)
    return actor, ts.step >= cfg.learning_starts


def _final_params(ts: TrainState) -> Any:
    """The run's params: `{"actor", "critic", "alpha"}`, and `"obs_norm"` with normalize_obs."""
    return networks.with_obs_norm(ts.params, ts.obs_norm)


def _actor_of(params: Any) -> Any:
    """The actor's params of a run's params, carrying its observation statistics if any."""
    actor = params["actor"]
    if networks.OBS_NORM in params:
        actor = {**actor, networks.OBS_NORM: params[networks.OBS_NORM]}
    return actor


def _learner(cfg: Config, env, opt, num_devices: int, torso, actor_of):
    """`(policy, init, learn)` of either loop; `actor_of(key, envs_per_device)` gives the
    in-graph envs' state (None on the host loop)."""
    envs_per_device, batch_per_device, buffer_per_device = per_device(
        "sac", cfg, num_devices, "num_envs", "batch_size", "buffer_size"
    )
    policy = SquashedGaussianPolicy(env, torso, cfg.hidden)

    def init(device_index):
        k_params, k_env, k_run = jax.random.split(jax.random.key(cfg.seed), 3)
        params = policy.init(k_params, env.obs_shape, cfg.init_alpha)
        return TrainState(
            params,
            params["critic"],
            opt.init(params),
            init_replay(env, buffer_per_device),
            actor_of(jax.random.fold_in(k_env, device_index), envs_per_device),
            jax.random.fold_in(k_run, device_index),
            jnp.zeros((), jnp.int32),
            RunningMeanStd.init(env.obs_shape) if cfg.normalize_obs else None,
            RewardScale.init(envs_per_device) if cfg.normalize_reward else None,
        )

    return policy, init, make_learn(cfg, policy, opt, batch_per_device)


def anakin(cfg: Config, env, opt, num_devices: int, torso) -> AnakinLearner:
    """The in-graph learner: `train_every` steps per env, then `learn`."""
    policy, init, learn = _learner(
        cfg, env, opt, num_devices, torso, lambda k, n: loops.init_actor(env, n, k)
    )

    def iteration(ts: TrainState, axis_name: str | None):
        key, k_roll = jax.random.split(ts.key)
        view = _actor_view(cfg, ts)
        actor = ts.actor._replace(stats=EpisodeStats.new_window(ts.actor.stats))
        actor, traj = loops.rollout(
            env, lambda obs, k: policy.explore(view, obs, k), actor, k_roll, cfg.train_every
        )
        ts = ts._replace(actor=actor, key=key, step=ts.step + cfg.steps_per_iteration)
        ts = _observe(cfg, ts, traj, axis_name)
        episodes = sync(EpisodeStats.summary(actor.stats), axis_name)
        return learn(ts, experience(traj, cfg.gamma), episodes, axis_name)

    return AnakinLearner(init, iteration)


def sebulba(cfg: Config, env, opt, num_devices: int, torso) -> SebulbaLearner:
    """The host-env learner: `learn` on each batch of steps the actor threads deliver."""
    policy, init, learn_new = _learner(cfg, env, opt, num_devices, torso, lambda k, n: None)

    def learn(ts: TrainState, rollout: loops.HostRollout, axis_name: str | None):
        ts = _observe(
            cfg, ts._replace(step=ts.step + cfg.steps_per_iteration), rollout.traj, axis_name
        )
        episodes = sync(loops.host_episode_summary(rollout), axis_name)
        return learn_new(ts, experience(rollout.traj, cfg.gamma), episodes, axis_name)

    return SebulbaLearner(
        init,
        policy.explore,
        learn,
        rollout_len=cfg.train_every,
        staleness=cfg.staleness,
        actor_params=lambda ts: _actor_view(cfg, ts),
    )


def acting(cfg: Config, env: Any, torso: networks.TorsoFactory) -> Acting:
    policy = SquashedGaussianPolicy(env, torso, cfg.hidden)
    return Acting(
        lambda p, obs: policy.greedy(_actor_of(p), obs),
        lambda p, obs, key: policy._shape(policy.sample(_actor_of(p), obs, key)[0]),
    )


AGENT = Agent(
    name="sac",
    description="SAC with learned temperature; continuous actions",
    config=Config,
    default_optimizer=default_optimizer,
    network=networks.default(jax.nn.relu),
    policy=acting,
    anakin=anakin,
    sebulba=sebulba,
    presets=PRESETS,
    actions=("continuous",),
    final_params=_final_params,
)
train, evaluate, config_for = AGENT.train, AGENT.evaluate, AGENT.config_for
