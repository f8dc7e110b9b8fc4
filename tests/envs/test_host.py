"""Host vector envs: same-step autoreset, true final observations, episode statistics."""

import numpy as np
import pytest

from inject_rl.envs import HostEnv, host_spaces, make


def _run_until_done(env: HostEnv, action, max_steps=1000):
    obs = env.reset(seed=0)
    for t in range(max_steps):
        ts = env.step(action)
        if ts.done.any():
            return obs, ts, t + 1
        obs = ts.obs
    raise AssertionError("no episode ended")


def test_spaces_match_the_jax_env():
    host, jax_env = host_spaces("CartPole-v1"), make("phys2d/CartPole-v1")
    assert host.obs_shape == jax_env.obs_shape
    assert host.discrete and host.num_actions == jax_env.num_actions == 2
    assert host.action_shape == () and host.max_episode_steps == 500
    pend = host_spaces("Pendulum-v1")
    assert not pend.discrete and pend.action_shape == (1,)
    np.testing.assert_array_equal(pend.action_low, [-2.0])
    with pytest.raises(AttributeError):
        pend.num_actions  # noqa: B018


def test_step_shapes_and_dtypes():
    with HostEnv("CartPole-v1", 3) as env:
        obs = env.reset(seed=0)
        ts = env.step(np.zeros(3, np.int32))
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    assert ts.obs.dtype == ts.next_obs.dtype == ts.reward.dtype == np.float32
    assert ts.terminated.dtype == ts.truncated.dtype == bool
    assert ts.episode_length.dtype == np.int32
    np.testing.assert_array_equal(ts.obs, ts.next_obs)  # nothing ended: no reset


def test_termination_resets_in_the_same_step_and_keeps_the_final_obs():
    with HostEnv("CartPole-v1", 2) as env:
        _, ts, steps = _run_until_done(env, np.zeros(2, np.int32))
    i = int(np.flatnonzero(ts.done)[0])
    assert ts.terminated[i] and not ts.truncated[i]
    # next_obs is the terminal state (pole fallen or cart out), obs a fresh reset state.
    x, theta = ts.next_obs[i, 0], ts.next_obs[i, 2]
    assert abs(theta) > 0.2095 or abs(x) > 2.4
    assert np.all(np.abs(ts.obs[i]) <= 0.05)
    # RecordEpisodeStatistics: CartPole pays 1 per step.
    assert ts.episode_length[i] == steps and ts.episode_return[i] == steps
    assert np.all(ts.episode_length[~ts.done] == 0)


def test_truncation_bootstraps_from_the_true_final_obs():
    with HostEnv("Pendulum-v1", 2, max_episode_steps=5) as env:
        env.reset(seed=1)
        for t in range(5):
            ts = env.step(np.zeros((2, 1), np.float32))
            assert ts.truncated.all() == (t == 4)
    assert env.max_episode_steps == 5
    assert not ts.terminated.any()
    assert not np.allclose(ts.obs, ts.next_obs)  # final obs kept, envs reset
    np.testing.assert_array_equal(ts.episode_length, [5, 5])


def test_continuous_actions_are_clipped_to_the_bounds():
    def first_reward(action):
        with HostEnv("Pendulum-v1", 1) as env:
            env.reset(seed=3)
            return env.step(np.array([[action]], np.float32)).reward[0]

    assert first_reward(50.0) == first_reward(2.0)


def test_same_seed_same_episodes():
    def trajectory():
        with HostEnv("CartPole-v1", 2) as env:
            out = [env.reset(seed=7)]
            for _ in range(30):
                out.append(env.step(np.ones(2, np.int32)).obs)
        return np.stack(out)

    np.testing.assert_array_equal(trajectory(), trajectory())


@pytest.mark.parametrize(
    "env_id, kwargs, match",
    [
        ("Nope-v0", {}, "unknown env id"),
        ("CartPole-v1", {"num_envs": 0}, "num_envs"),
        ("CartPole-v1", {"vectorization_mode": "vector_entry_point"}, "same-step"),
    ],
    ids=["unknown", "num-envs", "vector-entry-point"],
)
def test_bad_input_is_value_error(env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        HostEnv(env_id, **{"num_envs": 1, **kwargs})


def test_wrong_action_shape_and_idempotent_close():
    env = HostEnv("CartPole-v1", 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action shape"):
        env.step(np.zeros(3, np.int32))
    env.close()
    env.close()
    assert env.closed
