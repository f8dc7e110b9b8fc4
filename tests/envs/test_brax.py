"""brax environments in-graph (issue 13 item 4): `brax/<name>[@<backend>]` ids made into
`JaxEnv`s with a time limit, autoreset, truncation flags and `next_obs`, trained on by PPO and
SAC on the anakin loop.

A brax physics env takes 20 s to a minute to compile on CPU, so everything that compiles one is
`slow`. The default suite uses brax's `fast`, a physics-free unit-test env (a point that speeds
up while the action is positive; reward = position; never terminates), which compiles in about
a second, and a `fast` that terminates, registered here.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl import envs, loops
from inject_rl.envs import _brax, is_jax_env, jax_env_ids, make

brax_envs = pytest.importorskip("brax.envs")  # the extra `brax` (the test extra pulls it in)

FAST = "brax/fast"
PENDULUM = "brax/inverted_pendulum"


@functools.cache
def _env(env_id: str, max_episode_steps: int | None = None) -> envs.JaxEnv:
    return make(env_id, max_episode_steps=max_episode_steps)


@functools.cache
def _rollout_fn(env: envs.JaxEnv, num_envs: int, num_steps: int):
    """jit of `loops.rollout` under fixed per-env actions: `(key, actions [B, A]) -> (actor,
    transitions [T, B])`; the actions stay the same every step."""

    @jax.jit
    def run(key, actions):
        k_reset, k_run = jax.random.split(key)
        actor = loops.init_actor(env, num_envs, k_reset)
        policy = lambda obs, key: (actions, {})  # noqa: E731
        return loops.rollout(env, policy, actor, k_run, num_steps)

    return run


def envs_summary(actor) -> dict[str, float]:
    from inject_rl.signals import EpisodeStats

    return {k: float(v) for k, v in EpisodeStats.summary(actor.stats).items()}


def _check_episode_flags(env, tr, done_envs_reset_to):
    """Shared checks of a rollout: never both flags; obs == next_obs except on done steps, where
    obs is the fresh episode's first observation."""
    terminated, truncated = np.asarray(tr.terminated), np.asarray(tr.truncated)
    assert not (terminated & truncated).any()
    done = terminated | truncated
    obs, next_obs = np.asarray(tr.obs), np.asarray(tr.next_obs)
    # `tr.obs[t + 1]` is what the actor saw after step t: next_obs unless the episode ended.
    np.testing.assert_array_equal(obs[1:][~done[:-1]], next_obs[:-1][~done[:-1]])
    np.testing.assert_array_equal(obs[1:][done[:-1]], done_envs_reset_to(done[:-1].sum()))
    return terminated, truncated


# ------------------------------------------------------------------------------------ ids


def test_ids_are_brax_registry_names():
    ids = jax_env_ids()
    brax_ids = [i for i in ids if i.startswith("brax/")]
    assert brax_ids == sorted("brax/" + n for n in brax_envs._envs)
    assert {"brax/halfcheetah", "brax/hopper", "brax/ant", PENDULUM} <= set(brax_ids)
    assert ids == sorted(ids) and "phys2d/CartPole-v1" in ids


@pytest.mark.parametrize(
    ("env_id", "expected"),
    [
        ("brax/halfcheetah", ("halfcheetah", _brax.DEFAULT_BACKEND)),
        ("brax/halfcheetah@spring", ("halfcheetah", "spring")),
        ("brax/ant@positional", ("ant", "positional")),
        ("brax/hopper@generalized", ("hopper", "generalized")),
    ],
    ids=["default", "spring", "positional", "generalized"],
)
def test_parse(env_id, expected):
    assert _brax.parse(env_id) == expected
    assert is_jax_env(env_id)


@pytest.mark.parametrize(
    ("env_id", "match"),
    [
        ("brax/nosuch", r"unknown brax env 'nosuch'.*brax/halfcheetah.*@<backend>.*spring"),
        ("brax/HalfCheetah", r"unknown brax env 'HalfCheetah'.*brax/halfcheetah"),
        ("brax/", r"unknown brax env ''.*brax/ant"),
        ("brax/halfcheetah@warp", r"unknown brax backend 'warp'.*generalized, positional"),
        ("brax/halfcheetah@", r"unknown brax backend ''"),
    ],
    ids=["unknown", "case", "empty", "backend", "empty-backend"],
)
def test_unknown_names_are_refused_in_one_line_listing_the_allowed(env_id, match):
    assert not is_jax_env(env_id)
    with pytest.raises(ValueError, match=match) as info:
        make(env_id)
    assert "\n" not in str(info.value)


def test_phys2d_ids_do_not_import_brax():
    code = (
        "import sys; from inject_rl import envs; "
        "assert envs.is_jax_env('phys2d/CartPole-v1'); envs.make('phys2d/Pendulum-v0'); "
        "assert not envs.is_jax_env('CartPole-v1'); print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('brax', 'mujoco')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------ missing extra


@pytest.fixture
def no_brax(monkeypatch):
    """brax as if not installed: `find_spec` says None and its import fails."""
    for name in [m for m in sys.modules if m == "brax" or m.startswith("brax.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "brax", None)
    assert not _brax.installed()


def test_missing_extra_is_one_line_naming_it(no_brax):
    with pytest.raises(_brax.MissingExtra, match=r"pip install inject-rl\[brax\]") as info:
        make("brax/halfcheetah")
    assert isinstance(info.value, ValueError) and isinstance(info.value, ImportError)
    assert "\n" not in str(info.value)
    # In-graph whatever the name, so that training reaches `make` and this message.
    assert is_jax_env("brax/halfcheetah") and is_jax_env("brax/anything")
    assert not any(i.startswith("brax/") for i in jax_env_ids())
    assert "phys2d/CartPole-v1" in jax_env_ids()


def test_cli_without_brax_exits_2_with_one_line(tmp_path):
    code = (
        "import sys; sys.modules['brax'] = None; from inject_rl.cli import main; "
        f"sys.exit(main(['train', '--env', 'brax/halfcheetah', '--out', {str(tmp_path)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "pip install inject-rl[brax]" in line


# ------------------------------------------------------------------------ brax/fast (cheap)


def test_spaces_of_a_brax_env():
    env = _env(FAST)
    assert env.id == FAST and env.max_episode_steps == _brax.EPISODE_LENGTH == 1000
    assert env.obs_shape == (2,) and env.action_shape == (1,)
    assert env.action_kind == envs.CONTINUOUS and not env.discrete
    np.testing.assert_array_equal(env.action_low, [-1.0])
    np.testing.assert_array_equal(env.action_high, [1.0])
    assert make(FAST, max_episode_steps=7).max_episode_steps == 7
    with pytest.raises(ValueError, match="max_episode_steps must be a positive int"):
        make(FAST, max_episode_steps=0)


def test_dict_observations_are_refused():
    with pytest.raises(ValueError, match="one flat vector") as info:
        make(FAST, obs_mode="dict_state")  # a constructor kwarg of brax's Fast
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_step_matches_brax_and_keeps_the_state_structure(transform):
    env = _env(FAST)
    brax_env = brax_envs.get_environment("fast")
    state, obs = transform(env.reset)(jax.random.key(0))
    ref = brax_env.reset(jax.random.key(0))
    np.testing.assert_array_equal(obs, ref.obs)
    for action in (0.5, -0.3, 2.0):  # 2.0 acts as the bound 1.0
        state2, ts = transform(env.step)(state, jnp.array([action]), jax.random.key(1))
        ref2 = brax_env.step(ref, jnp.clip(jnp.array([action]), -1.0, 1.0))
        np.testing.assert_array_equal(ts.next_obs, ref2.obs)
        np.testing.assert_array_equal(ts.obs, ref2.obs)
        np.testing.assert_array_equal(ts.reward, ref2.reward)
        assert ts.reward.dtype == jnp.float32 and ts.terminated.dtype == jnp.bool_
        assert not ts.terminated and not ts.truncated
        assert jax.tree.structure(state2) == jax.tree.structure(state)
        for new, old in zip(jax.tree.leaves(state2), jax.tree.leaves(state), strict=True):
            assert new.shape == old.shape and new.dtype == old.dtype
        assert int(state2.step) == int(state.step) + 1
        state, ref = state2, ref2


def test_time_limit_truncates_with_next_obs_for_bootstrapping():
    """The point speeds up under a positive action and never terminates: every episode is cut
    by the time limit, which must read as truncated with the real last observation."""
    limit = 5
    env = _env(FAST, limit)
    actor, tr = _rollout_fn(env, 2, 12)(jax.random.key(0), jnp.array([[1.0], [-1.0]]))
    reset_obs = np.zeros(2, np.float32)  # brax's fast starts at rest at the origin
    terminated, truncated = _check_episode_flags(
        env, tr, lambda n: np.broadcast_to(reset_obs, (n, 2))
    )
    assert not terminated.any()
    expected = np.zeros((12, 2), bool)
    expected[[4, 9]] = True  # the 5th step of each episode
    np.testing.assert_array_equal(truncated, expected)
    next_obs = np.asarray(tr.next_obs)
    # Env 0 moved: its last observation (to bootstrap from) is not the reset one.
    assert (next_obs[[4, 9], 0] > 0).all()
    np.testing.assert_array_equal(np.asarray(tr.obs)[5, 0], reset_obs)
    # Episode statistics count the truncated episodes: 2 per env, 5 steps each.
    summary = envs_summary(actor)
    assert summary["episode_count"] == 4 and summary["episode_length"] == limit
    returns = np.asarray(tr.reward)[:10].reshape(2, 5, 2).sum(axis=1)  # [episode, env]
    np.testing.assert_allclose(summary["episode_return"], returns.mean(), rtol=1e-6)


def test_brax_resets_are_costly():
    """brax's reset runs the pipeline's init: `step_batch` skips it under a cond on any backend."""
    assert envs.make(FAST).costly_reset


def test_step_batch_is_vmapped_step_on_brax_state():
    """brax's State nests leaves of several ranks ([B], [B, 1, 3]...): the batched autoreset
    selects each whole, as `vmap(step)` does."""
    env = _env(FAST, 3)
    state, _ = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 2))
    actions = jnp.array([[1.0], [-1.0]])
    vmapped, batched = jax.jit(jax.vmap(env.step)), jax.jit(env.step_batch)
    a = b = state
    for t in range(7):
        keys = jax.random.split(jax.random.key(t), 2)
        a, ts_a = vmapped(a, actions, keys)
        b, ts_b = batched(b, actions, keys)
        for x, y in zip(jax.tree.leaves((a, ts_a)), jax.tree.leaves((b, ts_b)), strict=True):
            np.testing.assert_array_equal(x, y)
        assert bool(ts_b.truncated.all()) == (t in (2, 5))


class _FallingFast(brax_envs.fast.Fast):
    """brax's fast, terminating once the point passes x = 0.003: after 4 steps at full speed
    (x = 0.02**2 * n(n+1)/2 after n steps: 0.0024, then 0.004)."""

    def step(self, state, action):
        state = super().step(state, action)
        return state.replace(done=(state.obs[0] > 0.003).astype(jnp.float32))


@pytest.fixture
def falling():
    brax_envs.register_environment("test_falling_fast", _FallingFast)
    yield "brax/test_falling_fast"
    del brax_envs._envs["test_falling_fast"]


def test_brax_done_is_termination_not_truncation_even_at_the_limit(falling):
    assert falling in jax_env_ids() and is_jax_env(falling)  # registrations are seen
    env = make(falling, max_episode_steps=4)
    _, tr = _rollout_fn(env, 2, 12)(jax.random.key(0), jnp.array([[1.0], [-1.0]]))
    terminated, truncated = _check_episode_flags(env, tr, lambda n: np.zeros((n, 2), np.float32))
    # Env 0 terminates on its 4th step, which is also the time limit: terminated only.
    np.testing.assert_array_equal(np.flatnonzero(terminated[:, 0]), [3, 7, 11])
    assert not truncated[:, 0].any()
    assert (np.asarray(tr.next_obs)[terminated][:, 0] > 0.003).all()
    # Env 1 never moves: truncated.
    assert not terminated[:, 1].any()
    np.testing.assert_array_equal(np.flatnonzero(truncated[:, 1]), [3, 7, 11])


# ------------------------------------------------------------------ physics envs (slow)


@pytest.mark.slow
def test_physics_env_truncates_at_the_limit_and_terminates_when_the_pole_falls():
    """inverted_pendulum: left alone the pole stays up past the 10-step limit (truncated, with
    the real last observation); pushed at full force it falls (|angle| > 0.2: terminated)."""
    env = _env(PENDULUM, 10)
    _, tr = _rollout_fn(env, 2, 30)(jax.random.key(0), jnp.array([[0.0], [1.0]]))

    terminated, truncated = np.asarray(tr.terminated), np.asarray(tr.truncated)
    assert not (terminated & truncated).any()
    np.testing.assert_array_equal(np.flatnonzero(truncated[:, 0]), [9, 19, 29])
    assert not terminated[:, 0].any() and not truncated[:, 1].any()
    assert terminated[:, 1].sum() >= 3
    next_obs, obs = np.asarray(tr.next_obs), np.asarray(tr.obs)
    assert (np.abs(next_obs[:, 1][terminated[:, 1]][:, 1]) > 0.2).all()
    assert (np.abs(next_obs[:, 1][~terminated[:, 1]][:, 1]) <= 0.2).all()
    # After a done step the actor acts on a fresh episode (brax's reset: |q|, |qd| <= 0.01),
    # while next_obs keeps the observation to bootstrap from.
    done = terminated | truncated
    assert (np.abs(obs[1:][done[:-1]]) <= 0.01).all()
    assert (np.abs(next_obs[:-1][done[:-1]] - obs[1:][done[:-1]]).max(axis=-1) > 0).all()


def _ppo_cfg(env_id, **overrides):
    from inject_rl.agents import ppo

    base = dict(
        total_steps=2048, num_envs=8, rollout_len=32, epochs=2, num_minibatches=2,
        iterations_per_call=4, hidden=(32,), normalize_obs=True,
    )  # fmt: skip
    return ppo.config_for(env_id, **{**base, **overrides})


@pytest.mark.slow
def test_ppo_on_two_devices_trains_normalises_and_acts():
    from inject_rl.agents import ppo

    if jax.local_device_count() < 2:
        pytest.skip("needs 2 devices (conftest sets 4 fake CPU devices)")
    r = ppo.train(_ppo_cfg(PENDULUM), num_devices=2)
    m = r.metrics
    for name in ("loss", "value_loss", "kl", "entropy", "grad_norm"):
        assert np.isfinite(m[name]).all(), name
    assert (m["diverged"] == 0).all()
    assert m["step"][-1] == 2048
    # Random inverted-pendulum episodes last tens of steps: every iteration ends some.
    assert (m["episode_count"] > 0).all()
    assert np.isfinite(m["episode_return"]).all() and (m["episode_length"] >= 1).all()
    np.testing.assert_allclose(m["episode_return"], m["episode_length"])  # reward 1 per step
    # Replicas bitwise equal: params, optimizer and the observation statistics.
    s = r.state
    assert loops.replicas_equal((s.params, s.opt_state, s.obs_norm))
    norm = loops.unreplicate(s.obs_norm)
    assert float(norm.count) == 2048  # every observation acted on, on both devices
    assert np.isfinite(norm.mean).all() and (np.asarray(norm.var) > 0).all()
    # The policy acts on raw brax observations (normalised inside, with the saved statistics).
    obs = np.asarray(make(PENDULUM).reset(jax.random.key(3))[1])
    policy = r.policy()
    action = policy.act(obs)
    assert action.shape == (1,) and np.abs(action).max() <= 1.0
    assert policy.act(np.stack([obs, obs])).shape == (2, 1)
    assert np.isfinite(policy.evaluate(episodes=2))


@pytest.mark.slow
def test_sac_trains_on_a_physics_env():
    from inject_rl.agents import sac

    cfg = sac.config_for(
        PENDULUM, total_steps=1024, num_envs=4, train_every=4, gradient_steps=2, batch_size=32,
        learning_starts=128, hidden=(32,), iterations_per_call=32,
    )  # fmt: skip
    r = sac.train(cfg)
    m = r.metrics
    assert (m["diverged"] == 0).all()
    assert np.isfinite(m["loss"][-8:]).all() and np.isfinite(m["value_loss"][-8:]).all()
    assert m["episode_count"].sum() > 0
    action = r.policy().act(np.asarray(make(PENDULUM).reset(jax.random.key(0))[1]))
    assert action.shape == (1,) and np.abs(action).max() <= 1.0


@pytest.mark.slow
def test_cli_trains_ppo_on_brax_and_load_policy_acts(tmp_path):
    from inject_rl.agents import load_policy
    from tests._cli import cli, ok, subprocess_env

    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text('{"num_envs": 4, "rollout_len": 32, "iterations_per_call": 8}')
    proc = cli(
        ["train", "--agent", "ppo", "--env", FAST, "--steps", 4096, "--out", out,
         "--config", config, "--quiet"],
        subprocess_env(tmp_path / "cache"), tmp_path,
    )  # fmt: skip
    ok(proc)
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]
    # 4 envs x 1024 steps: each env's first episode was cut by the 1000-step limit.
    assert sum(row.get("episode_count", 0) for row in rows) == 4
    assert {row["episode_length"] for row in rows if row.get("episode_count")} == {1000}
    policy = load_policy(out)
    action = policy.act(np.zeros(2, np.float32))
    assert action.shape == (1,) and -1.0 <= float(action[0]) <= 1.0


def test_video_of_a_brax_run_is_refused_in_one_line():
    from inject_rl.cli._eval import host_env_id

    with pytest.raises(ValueError, match=r"^--video: brax/halfcheetah@spring cannot be filmed"):
        host_env_id("brax/halfcheetah@spring")
