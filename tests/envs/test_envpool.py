"""envpool host envs (`envpool/<TaskId>`): same-step autoreset over envpool's next-step one,
episode statistics, seeds, spaces, Atari frames, and agents training on them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("envpool")

from inject_rl.envs import EnvpoolEnv, HostEnv, host_env, host_spaces  # noqa: E402


def _cartpole_step(obs: np.ndarray, action: int) -> np.ndarray:
    """gymnasium's CartPole dynamics from `obs`: the observation one step later."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    env = CartPoleEnv()
    env.reset(seed=0)
    env.state = np.asarray(obs, np.float64)
    return env.step(int(action))[0]


def _rollout(env, steps, seed, action_seed=0):
    rng = np.random.default_rng(action_seed)
    obs = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        action = rng.integers(0, 2, env.num_envs)
        ts = env.step(action)
        out.append((obs, action, ts))
        obs = ts.obs
    return out


def test_same_step_autoreset_gives_no_fake_transition():
    """Every transition is real: CartPole pays 1 per real step (envpool's reset call pays 0),
    `next_obs` is gymnasium's dynamics applied to `obs` and the action (also right after a
    reset), an ended env's `obs` is a fresh reset state, and `next_obs` the terminal one."""
    with EnvpoolEnv("envpool/CartPole-v1", 3) as env:
        steps = _rollout(env, 120, seed=0)
    since = np.zeros(3, int)
    ended = 0
    for obs, action, ts in steps:
        since += 1
        np.testing.assert_array_equal(ts.reward, np.ones(3, np.float32))
        for i in range(3):
            expected = _cartpole_step(obs[i], action[i])
            np.testing.assert_allclose(ts.next_obs[i], expected, rtol=1e-4, atol=1e-5)
        for i in np.flatnonzero(ts.done):
            ended += 1
            assert ts.terminated[i] and not ts.truncated[i]
            x, theta = ts.next_obs[i, 0], ts.next_obs[i, 2]
            assert abs(theta) > 0.2095 or abs(x) > 2.4  # terminal: pole fallen or cart out
            assert np.all(np.abs(ts.obs[i]) <= 0.05)  # a reset state
            assert ts.episode_length[i] == since[i] and ts.episode_return[i] == since[i]
            since[i] = 0
        np.testing.assert_array_equal(ts.obs[~ts.done], ts.next_obs[~ts.done])
        assert np.all(ts.episode_length[~ts.done] == 0)
        assert np.all(ts.episode_return[~ts.done] == 0)
    assert ended >= 3  # random actions end CartPole episodes in ~20 steps


def test_truncation_keeps_the_true_final_obs():
    with EnvpoolEnv("envpool/Pendulum-v1", 2, max_episode_steps=5) as env:
        env.reset(seed=1)
        for t in range(5):
            ts = env.step(np.zeros((2, 1), np.float32))
            assert ts.truncated.all() == (t == 4)
    assert env.max_episode_steps == 5 and not ts.terminated.any()
    assert not np.allclose(ts.obs, ts.next_obs)  # final obs kept, envs reset
    np.testing.assert_array_equal(ts.episode_length, [5, 5])
    np.testing.assert_allclose(ts.episode_return, np.float32(0) + ts.episode_return)
    assert np.all(ts.episode_return < 0)  # Pendulum pays costs


def test_seeds_make_runs_reproducible():
    def trajectory(seed):
        with EnvpoolEnv("envpool/CartPole-v1", 2) as env:
            return np.stack([ts.next_obs for _, _, ts in _rollout(env, 60, seed)])

    a, b, c = trajectory(7), trajectory(7), trajectory(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_reset_with_the_same_seed_restarts_the_same_episodes():
    with EnvpoolEnv("envpool/CartPole-v1", 2) as env:
        first = [ts.next_obs for _, _, ts in _rollout(env, 30, seed=3)]
        again = [ts.next_obs for _, _, ts in _rollout(env, 30, seed=3)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


@pytest.mark.parametrize(
    "env_id, obs_shape, kind, action_shape",
    [
        ("envpool/CartPole-v1", (4,), "discrete", ()),
        ("envpool/HalfCheetah-v5", (17,), "continuous", (6,)),
        ("envpool/Pong-v5", (84, 84, 4), "discrete", ()),
    ],
    ids=["cartpole", "halfcheetah", "pong"],
)
def test_spaces(env_id, obs_shape, kind, action_shape):
    spaces = host_spaces(env_id)
    assert isinstance(spaces, EnvpoolEnv) and spaces.closed
    assert spaces.obs_shape == obs_shape and spaces.action_kind == kind
    assert spaces.action_shape == action_shape
    with host_env(env_id, 2) as env:
        obs = env.reset(seed=0)
        action = np.zeros((2, *action_shape), np.float32 if kind == "continuous" else np.int32)
        ts = env.step(action)
    assert obs.shape == ts.obs.shape == ts.next_obs.shape == (2, *obs_shape)
    assert obs.dtype == ts.obs.dtype == np.float32 and ts.reward.dtype == np.float32


def test_atari_frames_are_channels_last_scaled_images():
    spaces = host_spaces("envpool/Pong-v5")
    assert spaces.observation_space.shape == (84, 84, 4)
    assert spaces.observation_space.dtype == np.uint8
    assert spaces.obs_preprocessor.image and spaces.num_actions == 6
    with EnvpoolEnv("envpool/Pong-v5", 1) as env:
        obs = env.reset(seed=0)
        frames = env._pool.reset()[0]  # envpool's own: [1, 4, 84, 84] uint8, channels first
    assert frames.shape == (1, 4, 84, 84)
    assert 0.0 <= obs.min() and obs.max() <= 1.0 and obs.max() > 0.0
    np.testing.assert_allclose(obs[0], np.transpose(frames[0], (1, 2, 0)) / 255.0, atol=1e-6)


def _games(**kwargs):
    """(step, env, terminated, episode_return, episode_length) of every ended episode of 2 envs
    of Breakout under random actions, and the learner's rewards."""
    rng = np.random.default_rng(0)
    ends, rewards = [], []
    with EnvpoolEnv("envpool/Breakout-v5", 2, **kwargs) as env:
        env.reset(seed=3)
        for t in range(400):
            ts = env.step(rng.integers(0, 4, 2))
            rewards.append(ts.reward)
            for i in np.flatnonzero(ts.done):
                ends.append((t, i, ts.terminated[i], ts.episode_return[i], ts.episode_length[i]))
    return ends, np.stack(rewards)


def test_atari_reports_whole_games_with_episodic_life():
    """With `episodic_life`, every life lost ends the learner's episode (terminated) but the
    statistic is the whole game's: 0 until the game ends, then its unclipped score and steps
    over all lives, the same as without reward clipping."""
    clipped, clipped_rewards = _games(episodic_life=True, reward_clip=True)
    raw, raw_rewards = _games(episodic_life=True, reward_clip=False)
    assert [e[:3] for e in clipped] == [e[:3] for e in raw]  # clipping changes no dynamics
    games = [e for e in clipped if e[4] > 0]
    lives = [e for e in clipped if e[4] == 0]
    assert games and len(lives) >= 4 * len(games)  # Breakout: 5 lives a game
    assert all(e[2] and e[3] == 0 for e in lives)
    last = {0: -1, 1: -1}
    for t, i, _, ret, length in games:
        assert length == t - last[i]  # every step of the game, over all its lives
        assert ret == raw_rewards[last[i] + 1 : t + 1, i].sum()  # the unclipped score
        last[i] = t
    assert set(np.unique(clipped_rewards)) <= {0.0, 1.0}
    assert [e[3] for e in clipped] == [e[3] for e in raw]


def test_missing_envpool_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)
    with pytest.raises(ValueError, match=r"pip install 'inject-rl\[envpool\]'") as e:
        host_spaces("envpool/CartPole-v1")
    assert "\n" not in str(e.value)


def test_missing_envpool_cli_exits_2_without_a_traceback(monkeypatch, tmp_path, capsys):
    from inject_rl.cli import main

    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "envpool", None)
    code = main(["train", "--agent", "ppo", "--env", "envpool/CartPole-v1", "--out", "o"])
    err = capsys.readouterr().err
    assert code == 2 and "inject-rl[envpool]" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "env_id, kwargs, words",
    [
        ("envpool/CartPol-v1", {}, "did you mean envpool/CartPole-v1"),
        ("envpool/CartPole-v1", {"bogus": 1}, "bad envpool config"),
        ("envpool/CartPole-v1", {"seed": 1}, "set by EnvpoolEnv"),
    ],
    ids=["unknown-task", "unknown-key", "own-key"],
)
def test_bad_ids_and_kwargs(env_id, kwargs, words):
    with pytest.raises(ValueError, match=words):
        EnvpoolEnv(env_id, 2, **kwargs)


def test_step_before_reset_and_bad_actions():
    with EnvpoolEnv("envpool/CartPole-v1", 2) as env:
        with pytest.raises(ValueError, match="reset"):
            env.step(np.zeros(2, np.int32))
        env.reset(seed=0)
        with pytest.raises(ValueError, match="action shape"):
            env.step(np.zeros(3, np.int32))


def test_host_eval_on_envpool_matches_the_cartpole_score_of_a_fixed_policy():
    from inject_rl.loops import evaluate_host_policy

    # Pushing right always: the pole falls within ~10 steps on either backend.
    gym = evaluate_host_policy("CartPole-v1", lambda obs: np.ones(len(obs), np.int32), 4, 0)
    pool = evaluate_host_policy(
        "envpool/CartPole-v1", lambda obs: np.ones(len(obs), np.int32), 4, 0
    )
    assert 5 <= pool <= 20 and 5 <= gym <= 20


def test_cli_trains_evaluates_and_loads_an_envpool_run(monkeypatch, tmp_path, capsys):
    """`inject-rl train` on an envpool id, then `inject-rl eval` and `load_policy` on its run."""
    import json

    from inject_rl.agents import load_policy
    from inject_rl.cli import main

    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    tiny = {"num_envs": 2, "rollout_len": 8, "epochs": 1, "iterations_per_call": 2, "hidden": [8]}
    (tmp_path / "tiny.json").write_text(json.dumps(tiny))
    args = ["--agent", "ppo", "--env", "envpool/CartPole-v1", "--config", "tiny.json"]
    assert main(["train", *args, "--steps", "64", "--out", "run", "--quiet"]) == 0
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["env"] == "envpool/CartPole-v1" and record["loop"] == "sebulba"
    capsys.readouterr()
    assert main(["eval", "run", "--episodes", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "eval return" in out and "envpool/CartPole-v1" in out and "3 greedy episodes" in out
    policy = load_policy(tmp_path / "run")
    assert policy.act(np.zeros((5, 4), np.float32)).shape == (5,)
    assert policy.evaluate(episodes=3, seed=1) == pytest.approx(float(out.split()[2]), abs=0.01)


@pytest.mark.slow
def test_ppo_trains_and_acts_on_envpool_cartpole():
    from inject_rl.agents import ppo

    cfg = ppo.Config(
        env_id="envpool/CartPole-v1",
        total_steps=2048,
        num_envs=4,
        rollout_len=32,
        epochs=4,
        iterations_per_call=4,
    )
    res = ppo.train(cfg)
    assert res.metrics["step"][-1] == 2048 and np.isfinite(res.metrics["loss"]).all()
    returns = res.metrics["episode_return"]
    assert np.nanmax(returns) > 20  # random play: ~22; episodes end and are counted
    assert res.metrics["episode_count"].sum() > 0
    policy = res.policy()
    assert isinstance(policy.act(np.zeros(4, np.float32)).item(), int)
    assert np.isfinite(policy.evaluate(episodes=2))


@pytest.mark.slow
def test_dqn_trains_on_envpool_cartpole():
    from inject_rl.agents import dqn

    # The CartPole-v1 preset (the host loop's: no in-graph evaluation), on envpool.
    preset = {**dqn.PRESETS["CartPole-v1"], "lr_anneal_steps": 2000}
    cfg = dqn.Config(**preset, env_id="envpool/CartPole-v1", total_steps=2000, seed=0)
    res = dqn.train(cfg)
    assert np.isfinite(res.metrics["episode_return"]).any()
    assert res.metrics["step"][-1] >= 2000
    assert res.policy().act(np.zeros((3, 4), np.float32)).shape == (3,)


@pytest.mark.slow
def test_ppo_solves_envpool_cartpole():
    from inject_rl.agents import ppo

    res = ppo.train(ppo.config_for("envpool/CartPole-v1", total_steps=100_000, seed=0))
    assert ppo.evaluate(res, episodes=10) >= 475


def test_envpool_is_not_a_gymnasium_host_env():
    assert not isinstance(host_spaces("envpool/CartPole-v1"), HostEnv)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, env_id, overrides",
    [
        ("sac", "envpool/Pendulum-v1", dict(total_steps=600, learning_starts=200)),
        ("impala", "envpool/CartPole-v1", dict(total_steps=1024, num_envs=4, rollout_len=16)),
        ("ppo", "envpool/Pong-v5", dict(total_steps=64, num_envs=2, rollout_len=16, epochs=1)),
    ],
    ids=["sac-pendulum", "impala-cartpole", "ppo-pong-images"],
)
def test_every_agent_trains_on_envpool(name, env_id, overrides):
    from inject_rl.agents import get

    agent = get(name)
    res = agent.train(agent.config(env_id=env_id, iterations_per_call=1, **overrides))
    assert res.metrics["step"][-1] >= overrides["total_steps"]
    assert not res.metrics["diverged"].any()
    obs = np.zeros((1, *host_spaces(env_id).observation_space.shape), np.float32)
    assert res.policy().act(obs).shape[0] == 1


def test_video_of_an_envpool_run_films_the_gymnasium_env_or_says_why_not():
    from inject_rl.cli._eval import host_env_id

    assert host_env_id("envpool/HalfCheetah-v5") == "HalfCheetah-v5"
    with pytest.raises(ValueError, match="no gymnasium env Pong-v5"):
        host_env_id("envpool/Pong-v5")


def test_list_names_the_envpool_ids():
    from inject_rl.cli import _listing

    data = {"agents": [], "jax_envs": [], "schedules": [], "step_schedules": [], "optimizers": []}
    text = "\n".join(_listing.lines(data))
    assert "envpool/<TaskId>" in text and "inject-rl[envpool]" in text
    assert "--vectorization sync|async" in text
