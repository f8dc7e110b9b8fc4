"""Double DQN: replay buffer, smoke, signals reaching user schedules, devices, learning."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl.agents import dqn
from inject_rl.agents._replay import experience
from inject_rl.loops import ReplayBuffer, Transition, replicas_equal
from inject_rl.optim import injected

# The signals every learner step passes to `opt.update` (and every iteration to epsilon).
SIGNALS = {
    "loss",
    "td_error",
    "grad_norm",
    "episode_return",
    "episode_length",
    "episode_count",
    "step",
}

TINY = dict(
    total_steps=512,
    num_envs=4,
    train_every=8,
    gradient_steps=4,
    batch_size=16,
    buffer_size=256,
    learning_starts=64,
    target_update_every=3,
    hidden=(16, 16),
    eval_every=2,
    eval_episodes=2,
    iterations_per_call=4,
)


# ------------------------------------------------------------------------------- replay buffer


def test_replay_wraps_around_and_overwrites_oldest():
    buf = ReplayBuffer.init({"x": jnp.zeros((2,), jnp.float32)}, capacity=5)
    add = jax.jit(ReplayBuffer.add)
    for start in (0, 3, 6):
        buf = add(buf, {"x": jnp.stack([jnp.arange(start, start + 3)] * 2, -1).astype(float)})
    # 9 items into 5 slots: slots hold items 5..8 and 4 (slot 4 last written by item 4).
    np.testing.assert_array_equal(buf.data["x"][:, 0], [5, 6, 7, 8, 4])
    assert int(buf.index) == 9 % 5 and int(buf.size) == 5
    assert buf.data["x"].dtype == jnp.float32


def test_replay_samples_only_filled_slots():
    buf = ReplayBuffer.init(jnp.zeros((), jnp.int32), capacity=100)
    buf = ReplayBuffer.add(buf, jnp.arange(1, 8))  # slots 0..6 hold 1..7; the rest hold 0
    sample = jax.jit(ReplayBuffer.sample, static_argnums=2)(buf, jax.random.key(0), 4096)
    values = np.asarray(sample)
    assert values.min() >= 1 and values.max() <= 7
    assert set(values.tolist()) == set(range(1, 8))  # every filled slot is drawn


def test_replay_is_a_scan_carry_and_rejects_oversized_batches():
    buf = ReplayBuffer.init(jnp.zeros((3,)), capacity=8)
    out, _ = jax.lax.scan(lambda b, x: (ReplayBuffer.add(b, x), None), buf, jnp.ones((5, 2, 3)))
    assert jax.tree.map(jnp.shape, out) == jax.tree.map(jnp.shape, buf)
    assert int(out.size) == 8 and int(out.index) == 10 % 8
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer.add(buf, jnp.ones((9, 3)))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer.init(jnp.zeros(()), capacity=0)


def _rollout(reward, terminated, truncated):
    """A `[T, B]` rollout whose `next_obs[t, b]` is `10 t + b` (obs: its negative)."""
    t, b = reward.shape
    next_obs = (10 * jnp.arange(t)[:, None] + jnp.arange(b)).astype(jnp.float32)[..., None]
    return Transition(
        -next_obs,
        jnp.zeros((t, b), jnp.int32),
        jnp.asarray(reward, jnp.float32),
        jnp.asarray(terminated, bool),
        jnp.asarray(truncated, bool),
        next_obs,
        {},
    )


# Env 0 terminates at t=1; env 1 is truncated at t=0 (a time limit: it bootstraps).
NSTEP_ROLLOUT = dict(
    reward=[[1, 1], [2, 1], [3, 1], [4, 1]],
    terminated=[[0, 0], [1, 0], [0, 0], [0, 0]],
    truncated=[[0, 1], [0, 0], [0, 0], [0, 0]],
)


@pytest.mark.parametrize(
    "n_step, reward, discount, next_obs",
    [
        # gamma * (1 - terminated), the true next observation.
        (1, [1, 1, 2, 1, 3, 1, 4, 1], [.5, .5, 0, .5, .5, .5, .5, .5],
         [0, 1, 10, 11, 20, 21, 30, 31]),
        # Hand-computed, gamma 0.5: env 0 at t=0 stops at the termination (2 = 1 + 0.5 * 2, no
        # bootstrap), env 1 at t=0 at the truncation (bootstraps from obs 1); the last steps of
        # the rollout get fewer rewards (env 1 at t=2: 1 + 0.5, bootstrapping from obs 31).
        (3, [2, 1, 2, 1.75, 5, 1.5, 4, 1], [0, .5, 0, .125, .25, .25, .5, .5],
         [10, 1, 10, 31, 30, 31, 30, 31]),
    ],
    ids=["one_step", "three_step"],
)  # fmt: skip
def test_n_step_transitions_stop_at_episode_and_rollout_ends(n_step, reward, discount, next_obs):
    traj = _rollout(**{k: np.array(v) for k, v in NSTEP_ROLLOUT.items()})
    for fn in (experience, jax.jit(experience, static_argnums=(1, 2))):
        e = fn(traj, 0.5, n_step)
        np.testing.assert_allclose(e.reward, reward)
        np.testing.assert_allclose(e.discount, discount)
        np.testing.assert_array_equal(e.next_obs[:, 0], next_obs)
        np.testing.assert_array_equal(e.obs, traj.obs.reshape(8, 1))  # the first step's
        assert jax.tree.map(jnp.shape, e) == jax.tree.map(jnp.shape, experience(traj, 0.5))


# ----------------------------------------------------------------------------------- training


class _RecordState(NamedTuple):
    count: jax.Array  # shape=(), dtype=int32


class RecordingSchedule:
    """A user's own StatefulSchedule (not from inject_rl): a constant that records its keys."""

    def __init__(self, value: float):
        self.value, self.seen = value, []

    def init(self) -> _RecordState:
        return _RecordState(jnp.zeros((), jnp.int32))

    def update(self, state: _RecordState, **extra_args) -> _RecordState:
        self.seen.append(set(extra_args))  # at trace time
        return _RecordState(state.count + 1)

    def __call__(self, state: _RecordState, **extra_args) -> jax.Array:
        del extra_args
        return jnp.asarray(self.value, jnp.float32)


@pytest.fixture(scope="module")
def tiny_result():
    return dqn.train(dqn.Config(**TINY))


def test_smoke_metrics(tiny_result):
    cfg = tiny_result.config
    m = tiny_result.metrics
    required = {
        "episode_return",
        "episode_length",
        "episode_count",
        "loss",
        "td_error",
        "grad_norm",
        "step",
        "hp/learning_rate",
        "hp/epsilon",
    }
    assert required <= set(m)
    for k, v in m.items():
        assert v.shape == (cfg.num_iterations,), k
    np.testing.assert_array_equal(m["step"], np.arange(1, cfg.num_iterations + 1) * 32)
    learning = m["step"] >= cfg.learning_starts
    assert np.isnan(m["loss"][~learning]).all() and np.isfinite(m["loss"][learning]).all()
    assert np.all(np.diff(m["hp/epsilon"]) <= 0) and m["hp/epsilon"][0] == 1.0
    assert m["eval_steps"][-1] == cfg.num_evaluations * cfg.eval_episodes * 500
    assert int(tiny_result.state.updates[0]) == learning.sum() * cfg.gradient_steps
    assert np.isfinite(dqn.evaluate(tiny_result, episodes=2))


def test_user_schedules_receive_every_signal():
    eps, lr = RecordingSchedule(0.3), RecordingSchedule(1e-3)
    opt = injected(optax.adam, learning_rate=lr)
    res = dqn.train(dqn.Config(**TINY, epsilon=eps), optimizer=opt)
    assert eps.seen and lr.seen
    assert all(keys >= SIGNALS for keys in eps.seen + lr.seen)
    np.testing.assert_allclose(res.metrics["hp/epsilon"], 0.3)
    np.testing.assert_allclose(res.metrics["hp/learning_rate"], 1e-3)
    iterations = res.config.num_iterations
    assert int(res.state.epsilon_state.count[0]) == iterations  # updated once per iteration
    # ... and the learning rate on every learner step.
    assert int(res.opt_state.hyperparams_states["learning_rate"].count) == res.state.updates[0]


@pytest.mark.slow
@pytest.mark.parametrize("anneal_steps", [512, 256], ids=["whole_run", "half_run"])
def test_lr_anneal_steps_fall_log_linearly_then_hold(anneal_steps):
    cfg = dqn.Config(**TINY, lr_anneal_steps=anneal_steps, lr_init=1e-2, lr_final=1e-4)
    res = dqn.train(cfg)
    lr = res.metrics["hp/learning_rate"]
    assert int(res.state.updates[0]) == cfg.num_updates == 15 * 4  # learning from iteration 2
    n = cfg.updates_within(anneal_steps)
    assert n == {512: 60, 256: 28}[anneal_steps]
    # hp/learning_rate is the rate of the iteration's last update (the schedule's count before
    # it): log-linear in the update count, lr_final from update n on.
    expected = [1e-2] + [1e-2 * 1e-2 ** (min(4 * i - 1, n) / n) for i in range(1, 16)]
    np.testing.assert_allclose(lr, expected, rtol=1e-5)


def test_continuous_actions_are_rejected():
    # The Agent declares its action spaces; train (and the CLI, and load_policy) check them.
    cfg = dqn.Config(env_id="phys2d/Pendulum-v0")
    assert dqn.AGENT.actions == ("discrete",)
    with pytest.raises(ValueError, match="dqn needs a discrete action space, but .*Box"):
        dqn.train(cfg)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"epsilon": 1.5}, "epsilon"),
        ({"learning_starts": -1}, "learning_starts"),
        ({"buffer_size": 16}, "buffer_size"),
        ({"gamma": 1.1}, "gamma"),
        ({"n_step": 9}, "n_step must be at most train_every"),
        ({"n_step": 0}, "n_step"),
        ({"lr_anneal_steps": -1}, "lr_anneal_steps"),
    ],
    ids=[
        "epsilon",
        "learning_starts",
        "buffer",
        "gamma",
        "n_step_rollout",
        "n_step",
        "lr_anneal_steps",
    ],
)
def test_config_validation(change, match):
    with pytest.raises(ValueError, match=match):
        dqn.config_for("phys2d/CartPole-v1", **{**TINY, **change}).validate()


def test_two_devices_stay_identical_and_runs_repeat():
    cfg = dqn.Config(**TINY)
    a = dqn.train(cfg, num_devices=2)
    s = a.state
    assert jax.tree.leaves(s.params)[0].shape[0] == 2
    for tree in (
        s.params,
        s.target_params,
        s.opt_state,
        s.epsilon_state,
        s.best_params,
        s.best_return,
        s.step,
        s.updates,
    ):
        assert replicas_equal(tree)
    assert not replicas_equal(s.replay.data)  # each device acts on its own envs
    b = dqn.train(cfg, num_devices=2)
    for x, y in zip(
        jax.tree.leaves((a.params, a.state.params, a.opt_state)),
        jax.tree.leaves((b.params, b.state.params, b.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)


def test_resume_is_bitwise():
    cfg = dqn.Config(**TINY)
    saved = {}

    def keep(i, metrics, state):
        if i == 1:  # copied: the loop donates the state to the next call
            saved["state"] = jax.tree.map(jnp.copy, state)

    full = dqn.train(cfg, callback=keep)
    res = dqn.train(cfg, resume=(saved["state"], 2))
    for x, y in zip(jax.tree.leaves(full.state), jax.tree.leaves(res.state), strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(res.metrics["loss"], full.metrics["loss"][8:])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_solves_cartpole(seed):
    result = dqn.train(dqn.Config(seed=seed))
    assert dqn.evaluate(result) >= 475


def test_trains_on_host_envs_and_acts_with_its_final_params(tmp_path):
    """DQN on the sebulba loop (a host gymnasium id): epsilon-greedy actors, the same learner;
    no in-graph evaluation there, so the run keeps its final params."""
    cfg = dqn.Config(**{**TINY, "env_id": "CartPole-v1", "eval_every": 5})
    res = dqn.train(cfg)
    assert dqn.AGENT.loops == ("anakin", "sebulba")
    assert int(res.metrics["step"][-1]) == cfg.num_iterations * cfg.steps_per_iteration
    assert np.isfinite(res.metrics["loss"][-1]) and "eval_return" not in res.metrics
    eps = res.metrics["hp/epsilon"]
    assert eps[0] == 1.0 and eps[-1] < eps[0]  # the epsilon schedule ran on the host loop too
    final = jax.tree.leaves(res.state.params)
    assert all(
        np.array_equal(a, b[0]) for a, b in zip(jax.tree.leaves(res.params), final, strict=True)
    )
    assert res.policy().act(np.zeros((3, 4))).shape == (3,)
    again = dqn.train(cfg).metrics["loss"]
    np.testing.assert_array_equal(again, res.metrics["loss"])  # a seed fixes the run
