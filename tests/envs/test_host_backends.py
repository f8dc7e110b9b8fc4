"""The host vector backend (`Config.vectorization`, `--vectorization`): gymnasium's sync and
async vector envs give the same transitions, the choice reaches the sebulba loop, bad values are
refused in one line, and config.json keeps it through `--resume`."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

from inject_rl import envs
from inject_rl.agents import get, load_policy
from tests._cli import TINY

AGENTS = ("ppo", "dqn", "sac", "impala")


def _transitions(env_id, vectorization, steps=80, seed=5, **kwargs):
    rng = np.random.default_rng(0)
    out = []
    with envs.host_env(env_id, 3, vectorization=vectorization, **kwargs) as env:
        assert isinstance(env, envs.HostEnv)
        obs = env.reset(seed=seed)
        for _ in range(steps):
            if env.discrete:
                action = rng.integers(0, env.num_actions, 3)
            else:
                action = rng.uniform(-2.0, 2.0, (3, *env.action_shape)).astype(np.float32)
            ts = env.step(action)
            out.append((obs, ts))
            obs = ts.obs
    return out


@pytest.mark.parametrize(
    "env_id, kwargs",
    [("CartPole-v1", {}), ("Pendulum-v1", {"max_episode_steps": 30})],
    ids=["cartpole", "pendulum-truncated"],
)
def test_async_gives_the_same_transitions_as_sync(env_id, kwargs):
    sync = _transitions(env_id, "sync", **kwargs)
    async_ = _transitions(env_id, "async", **kwargs)
    assert sum(ts.done.sum() for _, ts in sync) >= 3  # episodes end (and reset) in the window
    for (obs_a, a), (obs_b, b) in zip(sync, async_, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        for field, x, y in zip(a._fields, a, b, strict=True):
            np.testing.assert_array_equal(x, y, err_msg=field)


@pytest.mark.parametrize(
    "env_id, vectorization, words",
    [
        ("CartPole-v1", "fast", "must be one of 'sync', 'async', got vectorization='fast'"),
        ("CartPole-v1", None, "got vectorization=None"),
        ("envpool/CartPole-v1", "async", "envpool's own threads"),
    ],
    ids=["unknown", "none", "envpool-async"],
)
def test_bad_vectorization_is_refused_in_one_line(env_id, vectorization, words):
    with pytest.raises(ValueError) as e:
        envs.host_env(env_id, 2, vectorization=vectorization)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", AGENTS)
def test_every_agent_config_has_a_validated_vectorization(name):
    agent = get(name)
    assert agent.defaults()["vectorization"] == "sync"
    host = "Pendulum-v1" if name == "sac" else "CartPole-v1"
    assert agent.config(env_id=host, vectorization="async").validate().vectorization == "async"
    with pytest.raises(ValueError) as e:
        agent.config(env_id=host, vectorization="fast").validate()
    assert str(e.value) == (
        f"{name}: vectorization must be one of 'sync', 'async', got vectorization='fast'"
    )
    for env_id, words in (
        ("phys2d/CartPole-v1", "stepped in-graph"),
        ("envpool/CartPole-v1", "envpool's own threads"),
    ):
        with pytest.raises(ValueError, match=words):
            agent.config(env_id=env_id, vectorization="async").validate()


@pytest.mark.parametrize("name", AGENTS)
def test_vectorization_round_trips_through_config_json(name):
    agent = get(name)
    cfg = agent.config(env_id="Pendulum-v1" if name == "sac" else "CartPole-v1")
    cfg = dataclasses.replace(cfg, vectorization="async")
    text = json.dumps(agent.config_to_json(cfg))
    back = agent.config(**agent.config_from_json(json.loads(text), "config.json"))
    assert back == cfg and back.vectorization == "async"


def test_the_sebulba_loop_refuses_a_bad_vectorization_before_making_envs(monkeypatch):
    from inject_rl import loops
    from inject_rl.loops import _sebulba

    monkeypatch.setattr(_sebulba, "host_env", lambda *a, **k: pytest.fail("env made"))
    with pytest.raises(ValueError, match="vectorization must be one of"):
        loops.run_sebulba(
            None, None, None, env_id="CartPole-v1", num_envs=2, rollout_len=2, num_calls=1,
            iterations_per_call=1, seed=0, vectorization="threads",
        )  # fmt: skip


@pytest.mark.slow
def test_async_reaches_the_loop_and_trains_as_sync(monkeypatch):
    """PPO with `vectorization="async"` steps its envs on gymnasium's async vector env, and
    (same seed, same transitions) ends bitwise where the sync run does."""
    from inject_rl.agents import ppo
    from inject_rl.loops import _sebulba

    made = []

    def spy(env_id, num_envs, **kwargs):
        env = envs.host_env(env_id, num_envs, **kwargs)
        made.append(type(env._env.env).__name__)  # RecordEpisodeStatistics(vector env)
        return env

    monkeypatch.setattr(_sebulba, "host_env", spy)
    cfg = ppo.Config(env_id="CartPole-v1", total_steps=64, **{**TINY, "hidden": (8,)})
    a = ppo.train(cfg)
    b = ppo.train(dataclasses.replace(cfg, vectorization="async"))
    assert made == ["SyncVectorEnv", "AsyncVectorEnv"]
    for k in ("loss", "episode_return", "kl"):
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    return tmp_path


def _train(*args):
    from inject_rl.cli import main

    base = ["train", "--agent", "ppo", "--config", "tiny.json", "--eval-episodes", "1"]
    return main([*base, "--quiet", *args])


def test_cli_bad_vectorization_exits_2_in_one_line(cli_env, capsys):
    code = _train("--env", "CartPole-v1", "--vectorization", "fast", "--out", "o")
    err = capsys.readouterr().err
    assert code == 2 and "vectorization must be one of 'sync', 'async'" in err
    assert "'fast'" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (cli_env / "o").exists()
    code = _train("--env", "phys2d/CartPole-v1", "--vectorization", "async", "--out", "o")
    assert code == 2 and "stepped in-graph" in capsys.readouterr().err


def test_cli_async_run_records_acts_and_keeps_its_backend_on_resume(cli_env, capsys):
    run = cli_env / "run"
    args = ("--env", "CartPole-v1", "--steps", "32", "--out", str(run))
    assert _train(*args, "--vectorization", "async") == 0
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["vectorization"] == "async"
    assert record["overrides"]["vectorization"] == "async"
    policy = load_policy(run)
    assert policy.config.vectorization == "async"
    assert policy.act(np.zeros((2, 4), np.float32)).shape == (2,)
    capsys.readouterr()
    # Switching the backend of a run is refused (a different run), nothing written...
    before = sorted((str(p), p.stat().st_mtime_ns) for p in run.rglob("*"))
    assert _train("--out", str(run), "--resume", "--vectorization", "sync", "--steps", "64") == 2
    err = capsys.readouterr().err
    assert "different run" in err and "config" in err
    assert sorted((str(p), p.stat().st_mtime_ns) for p in run.rglob("*")) == before
    # ... and --resume without the flag continues on the run's own backend.
    assert _train("--out", str(run), "--resume", "--steps", "64") == 0
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["vectorization"] == "async" and record["steps"] == 64


@pytest.mark.slow
def test_cli_resumes_a_run_from_before_the_field(cli_env):
    run = cli_env / "old"
    args = ("--env", "CartPole-v1", "--out", str(run))
    assert _train(*args, "--steps", "32") == 0
    path = run / "config.json"
    record = json.loads(path.read_text())
    assert record["config"].pop("vectorization") == "sync"
    path.write_text(json.dumps(record))
    assert _train(*args, "--resume", "--steps", "64") == 0
    assert json.loads(path.read_text())["steps"] == 64
