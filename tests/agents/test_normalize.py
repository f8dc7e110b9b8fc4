"""Observation normalisation and reward scaling (issue 13 item 2): the running statistics are
those of the observations and returns seen, identical on every device, kept through a
checkpoint and a resume, and carried by the policy a run saves."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces

from inject_rl import loops, runs
from inject_rl.agents import Policy, impala, networks, ppo, sac
from inject_rl.agents._actor_critic_policy import ActorCritic
from inject_rl.agents._squashed_gaussian import SquashedGaussianPolicy
from inject_rl.agents._train import spaces as env_spaces
from inject_rl.signals import RewardScale, RunningMeanStd

MEAN, STD = np.array([5.0, -3.0]), np.array([2.0, 0.5])


class Recorder(gymnasium.Env):
    """An endless episode of observations ~ N(MEAN, STD^2) and rewards ~ U(0, 2); every instance
    records what it emits (`instances`, in creation order)."""

    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    instances: list[Recorder] = []

    def __init__(self):
        self.observations, self.rewards = [], []
        Recorder.instances.append(self)

    def _emit(self):
        obs = (MEAN + STD * self.np_random.standard_normal(2)).astype(np.float32)
        self.observations.append(obs)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._emit(), {}

    def step(self, action):
        reward = float(self.np_random.uniform(0.0, 2.0))
        self.rewards.append(np.float32(reward))
        return self._emit(), reward, False, False, {}


RECORDER = "InjectRLNormalize/Recorder-v0"
if RECORDER not in gymnasium.registry:
    gymnasium.register(RECORDER, entry_point=Recorder)

# 4 envs x 8 steps, 4 iterations in 2 host calls.
HOST = dict(
    env_id=RECORDER, total_steps=128, num_envs=4, rollout_len=8, epochs=1, iterations_per_call=2
)
ON = dict(normalize_obs=True, normalize_reward=True)
ANAKIN = dict(
    env_id="phys2d/Pendulum-v0", total_steps=512, num_envs=4, rollout_len=16, epochs=2,
    num_minibatches=2, iterations_per_call=4,
)  # fmt: skip
IMPALA_ANAKIN = dict(
    env_id="phys2d/Pendulum-v0", total_steps=512, num_envs=4, rollout_len=16, iterations_per_call=4
)
SAC_ANAKIN = dict(
    env_id="phys2d/Pendulum-v0", total_steps=512, num_envs=4, train_every=4, gradient_steps=2,
    batch_size=32, learning_starts=64, hidden=(32,), iterations_per_call=8,
)  # fmt: skip


def _stepped() -> list[Recorder]:
    """The envs the actor stepped (not those made only to read the spaces)."""
    return [e for e in Recorder.instances if e.rewards]


def _shared(state):
    """What must be bitwise equal on every device."""
    return state.params, state.opt_state, state.obs_norm, state.reward_scale.stats


@pytest.mark.parametrize(
    "x",
    [np.ones((6, 3)) * [1e3, -2.0, 0.0], np.arange(24.0).reshape(3, 4, 2)],
    ids=["offset", "leading-axes"],
)
def test_running_statistics_are_numpys_over_every_batch(x):
    rng = np.random.default_rng(0)
    batches = [x + rng.normal(size=x.shape) * s for s in (1.0, 0.1, 3.0)]
    state = RunningMeanStd.init(x.shape[-1:])
    for b in batches:
        state = jax.jit(RunningMeanStd.update)(state, jnp.asarray(b, jnp.float32))
    seen = np.concatenate([b.reshape(-1, x.shape[-1]) for b in batches])
    np.testing.assert_allclose(state.mean, seen.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.var, seen.var(0), rtol=1e-4, atol=1e-5)
    assert float(state.count) == len(seen)


def test_devices_merge_to_the_statistics_of_all_their_samples():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(2, 5, 3)).astype(np.float32)
    out = jax.vmap(
        lambda b: RunningMeanStd.update(RunningMeanStd.init((3,)), b, "d"), axis_name="d"
    )(x)
    np.testing.assert_array_equal(out.mean[0], out.mean[1])
    np.testing.assert_allclose(out.mean[0], x.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(out.var[0], x.reshape(-1, 3).var(0), rtol=1e-4)
    assert out.count.tolist() == [10.0, 10.0]


@pytest.mark.slow
def test_host_run_keeps_the_statistics_of_what_it_saw_identical_on_two_devices():
    Recorder.instances.clear()
    cfg = ppo.Config(**HOST, **ON)
    res = ppo.train(cfg, num_devices=2)
    envs = _stepped()
    assert len(envs) == cfg.num_envs
    # Acted on: every observation but each env's last (the bootstrap after the last rollout).
    seen = np.concatenate([np.stack(e.observations[:-1]) for e in envs]).astype(np.float64)
    assert len(seen) == cfg.num_iterations * cfg.steps_per_iteration
    assert loops.replicas_equal(_shared(res.state))
    stats = loops.unreplicate(res.state.obs_norm)
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-4)
    assert float(stats.count) == len(seen)
    # Rewards: the statistics of every env's discounted return at every step (never reset here).
    returns = []
    for e in envs:
        g, out = 0.0, []
        for r in e.rewards:
            g = cfg.gamma * g + float(r)
            out.append(g)
        returns.append(out)
    returns = np.array(returns)  # [envs, steps]
    scale = res.state.reward_scale
    np.testing.assert_allclose(scale.stats.mean[0], returns.mean(), rtol=1e-4)
    np.testing.assert_allclose(scale.stats.var[0], returns.var(), rtol=1e-3)
    # Each device keeps its own envs' running returns (envs split in order over devices).
    np.testing.assert_allclose(scale.running_return.reshape(-1), returns[:, -1], rtol=1e-5)
    # The run's params carry the statistics.
    np.testing.assert_array_equal(res.params[networks.OBS_NORM]["mean"], stats.mean)


@pytest.mark.parametrize(
    "agent, config",
    [(ppo, ANAKIN), (impala, IMPALA_ANAKIN), (sac, SAC_ANAKIN)],
    ids=["ppo", "impala", "sac"],
)
@pytest.mark.slow
def test_anakin_replicas_stay_bitwise_equal_on_two_devices(agent, config):
    res = agent.train(agent.Config(**config, **ON), num_devices=2)
    assert loops.replicas_equal(_shared(res.state))
    count = res.state.obs_norm.count
    assert count.tolist() == [res.config.total_steps] * 2  # both devices' steps, on each
    # The envs, and so the running returns, differ per device (the test is not vacuous).
    running = np.asarray(res.state.reward_scale.running_return)
    assert not np.array_equal(running[0], running[1])


@pytest.mark.slow
def test_normalisation_off_leaves_the_state_and_params_as_they_were():
    res = ppo.train(ppo.Config(**ANAKIN))
    assert res.state.obs_norm is None and res.state.reward_scale is None
    assert networks.OBS_NORM not in res.params


@pytest.mark.slow
def test_checkpoint_and_resume_keep_the_statistics_bitwise(tmp_path):
    cfg = ppo.Config(**{**ANAKIN, "total_steps": 768}, **ON)  # 3 calls of 4 iterations
    ckpt = runs.Checkpointer(tmp_path / "ckpt")

    def save(i, metrics, state):
        if i == 0:
            ckpt.save(1, state, {})  # a host copy: the loop donates `state` to the next call

    full = ppo.train(cfg, callback=save)
    like = jax.eval_shape(lambda s: s, full.state)
    state, _ = ckpt.restore(1, like)
    assert float(state.obs_norm.count[0]) == 256  # one call's steps: saved mid-run
    res = ppo.train(cfg, resume=(state, 1))
    for x, y in zip(jax.tree.leaves(full.state), jax.tree.leaves(res.state), strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(x, y)
    ckpt.close()


def _normalized(stats, obs):
    return np.clip((obs - stats["mean"]) / np.sqrt(stats["var"] + 1e-8), -10.0, 10.0)


def test_loaded_ppo_policy_normalises_like_the_learner(tmp_path):
    res = ppo.train(ppo.Config(**{**HOST, "env_id": "Pendulum-v1"}, normalize_obs=True))
    stats = res.params[networks.OBS_NORM]
    assert float(stats["count"]) == res.config.total_steps
    obs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 4.0], [-1.0, 0.0, -8.0]], np.float32)
    plain = {k: v for k, v in res.params.items() if k != networks.OBS_NORM}
    env = env_spaces("Pendulum-v1")
    net = ActorCritic(env, networks.torso_for(env.obs_shape, res.config.hidden, jnp.tanh))
    policy = res.policy()
    want = np.asarray(net.greedy(plain, _normalized(stats, obs)))
    np.testing.assert_allclose(policy.act(obs), np.clip(want, -2.0, 2.0), rtol=1e-6)
    raw = np.clip(np.asarray(net.greedy(plain, obs)), -2.0, 2.0)
    assert not np.allclose(raw, want, atol=1e-4)  # the statistics matter for these inputs
    # Saved and loaded as `inject-rl train` and `load_policy` do: the statistics come along.
    runs.save_params(tmp_path / "params", res.params)
    loaded = Policy.of(ppo.AGENT, res.config, runs.load_params(tmp_path / "params"))
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))


@pytest.mark.slow
def test_loaded_sac_policy_normalises_like_the_learner(tmp_path):
    cfg = sac.Config(**SAC_ANAKIN, normalize_obs=True)
    res = sac.train(cfg)
    stats = res.params[networks.OBS_NORM]
    obs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 4.0], [-1.0, 0.0, -8.0]], np.float32)
    env = env_spaces(cfg.env_id)
    torso = networks.torso_for(env.obs_shape, cfg.hidden, jax.nn.relu)
    net = SquashedGaussianPolicy(env, torso, cfg.hidden)
    policy = res.policy()
    want = np.asarray(net.greedy(res.params["actor"], _normalized(stats, obs)))
    np.testing.assert_allclose(policy.act(obs), want, rtol=1e-6)
    assert not np.allclose(np.asarray(net.greedy(res.params["actor"], obs)), want, atol=1e-4)
    runs.save_params(tmp_path / "params", res.params)
    loaded = Policy.of(sac.AGENT, cfg, runs.load_params(tmp_path / "params"))
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))


@pytest.mark.parametrize("flag", ["normalize_obs", "normalize_reward"])
def test_flags_must_be_booleans(flag):
    with pytest.raises(ValueError, match=f"{flag} must be true or false"):
        ppo.Config(**{flag: 1}).validate()
    with pytest.raises(ValueError, match=f"{flag} must be true or false"):
        sac.Config(**{flag: "yes"}).validate()


def test_reward_scale_resets_each_env_after_its_episode():
    state = RewardScale.init(2)
    reward = jnp.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    done = jnp.array([[False, False], [True, False], [False, False]])
    state = RewardScale.update(state, reward, done, gamma=0.5)
    np.testing.assert_allclose(state.running_return, [1.0, 3.5])  # env 0 restarted at step 2
    np.testing.assert_allclose(state.stats.mean, np.mean([1.0, 1.5, 1.0, 2.0, 3.0, 3.5]))


class ImageBandit(gymnasium.Env):
    """One step per episode: a 5x5 frame with channel `key` lit; reward 1 - |action - target|."""

    observation_space = spaces.Box(0, 255, (5, 5, 3), np.uint8)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _observe(self):
        self.key = int(self.np_random.integers(3))
        frame = np.zeros((5, 5, 3), np.uint8)
        frame[..., self.key] = 255
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._observe(), {}

    def step(self, action):
        reward = 1.0 - abs(float(action[0]) - (-0.5 + 0.5 * self.key))
        return self._observe(), reward, True, False, {}


IMAGES = "InjectRLNormalize/ImageBandit-v0"
if IMAGES not in gymnasium.registry:
    gymnasium.register(IMAGES, entry_point=ImageBandit, max_episode_steps=2)


@pytest.mark.slow
def test_sac_critic_runs_its_torso_on_images_then_joins_the_action():
    """Issue 13 item 3: the critic concatenated the raw frame with the action (a shape error at
    trace time); now the conv torso sees the frame, an MLP the features and the action. With
    normalize_obs the statistics are per pixel and channel."""
    cfg = sac.Config(
        env_id=IMAGES, total_steps=256, num_envs=4, train_every=4, gradient_steps=2,
        batch_size=32, learning_starts=64, hidden=(16,), buffer_size=512,
        iterations_per_call=8, normalize_obs=True,
    )  # fmt: skip
    res = sac.train(cfg)
    critic = res.params["critic"]
    assert {"q1_joint/h0", "q2_joint/h0"} <= set(critic), sorted(critic)
    assert critic["q1_joint/h0"]["w"].shape == (16 + 1, 16)  # torso features + the action
    assert res.params[networks.OBS_NORM]["mean"].shape == (5, 5, 3)
    frames = np.zeros((3, 5, 5, 3), np.uint8)
    frames[np.arange(3), ..., np.arange(3)] = 255
    acts = res.policy().act(frames)
    assert acts.shape == (3, 1) and np.all(np.abs(acts) <= 1.0)


@pytest.mark.slow
def test_sac_critic_on_vectors_keeps_its_joint_torso():
    """Vector observations: the torso still takes `[obs, action]` (params as before)."""
    res = sac.train(sac.Config(**SAC_ANAKIN))
    critic = res.params["critic"]
    assert sorted(critic) == ["q1/h0", "q1_out", "q2/h0", "q2_out"], sorted(critic)
    assert critic["q1/h0"]["w"].shape == (3 + 1, 32)
