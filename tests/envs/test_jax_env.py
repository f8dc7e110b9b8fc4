"""Tests for inject_rl.envs: gymnasium functional JAX envs stepped in-graph with autoreset."""

import dataclasses
import functools

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.envs.phys2d import CartPoleFunctional, PendulumFunctional
from jax import lax

import inject_rl.envs as envs_pkg
from inject_rl.envs import EnvState, JaxEnv, TimeStep, is_jax_env, jax_env_ids, make

CARTPOLE = "phys2d/CartPole-v1"
PENDULUM = "phys2d/Pendulum-v0"
ENV_IDS = [CARTPOLE, PENDULUM]

# Our env runs the whole step as one XLA computation, the reference calls each FuncEnv method
# eagerly; fusion changes float32 rounding by a few ulp, nothing more.
_EQUIV_TOL = dict(rtol=1e-5, atol=1e-6)


@functools.cache
def _env(env_id: str, max_episode_steps: int | None = None) -> JaxEnv:
    if max_episode_steps is None:
        return make(env_id)
    return make(env_id, max_episode_steps=max_episode_steps)


def _random_action(env: JaxEnv, key: jax.Array) -> jax.Array:
    if env.discrete:
        return jax.random.randint(key, (), 0, env.num_actions)
    return jax.random.uniform(key, env.action_shape, minval=env.action_low, maxval=env.action_high)


@functools.cache
def _rollout_fn(env: JaxEnv, num_envs: int, num_steps: int):
    """jit(scan) of `num_envs` vmapped envs under random actions, compiled once per arguments.

    The returned function maps a key to `(states, step_keys, timesteps)`, each stacked over
    `[num_steps, num_envs]`: the state each step started from, the key it was given, its output.
    """

    @jax.jit
    def run(key):
        reset_key, key = jax.random.split(key)
        state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(state, key):
            action_key, step_key = jax.random.split(key)
            actions = jax.vmap(_random_action, in_axes=(None, 0))(
                env, jax.random.split(action_key, num_envs)
            )
            step_keys = jax.random.split(step_key, num_envs)
            next_state, ts = jax.vmap(env.step)(state, actions, step_keys)
            return next_state, (state, step_keys, ts)

        _, out = lax.scan(body, state, jax.random.split(key, num_steps))
        return out

    return run


def _rollout(env: JaxEnv, key: jax.Array, num_envs: int, num_steps: int):
    return _rollout_fn(env, num_envs, num_steps)(key)


# ---------------------------------------------------------------------------------- basics


def test_public_api_exports_every_name():
    for name in envs_pkg.__all__:
        assert getattr(envs_pkg, name) is not None, name


@pytest.mark.parametrize(
    ("env_id", "obs_shape", "func_state_shape"),
    [(CARTPOLE, (4,), (4,)), (PENDULUM, (3,), (2,))],
    ids=["cartpole", "pendulum"],
)
@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_reset_and_step_shapes_and_dtypes(env_id, obs_shape, func_state_shape, transform):
    env = _env(env_id)
    state, obs = transform(env.reset)(jax.random.key(0))
    assert isinstance(state, EnvState)
    assert obs.shape == obs_shape and obs.dtype == jnp.float32
    assert state.func_state.shape == func_state_shape
    assert state.step.shape == () and state.step.dtype == jnp.int32
    assert int(state.step) == 0

    action = jnp.zeros(env.action_shape, jnp.int32 if env.discrete else jnp.float32)
    next_state, ts = transform(env.step)(state, action, jax.random.key(1))
    assert isinstance(ts, TimeStep)
    assert jax.tree.structure(next_state) == jax.tree.structure(state)
    for new, old in zip(jax.tree.leaves(next_state), jax.tree.leaves(state), strict=True):
        assert new.shape == old.shape and new.dtype == old.dtype
    assert ts.obs.shape == obs_shape and ts.obs.dtype == jnp.float32
    assert ts.next_obs.shape == obs_shape and ts.next_obs.dtype == jnp.float32
    assert ts.reward.shape == () and ts.reward.dtype == jnp.float32
    for flag in (ts.terminated, ts.truncated, ts.done):
        assert flag.shape == () and flag.dtype == jnp.bool_
    assert int(next_state.step) == 1


@pytest.mark.parametrize("env_id", ENV_IDS, ids=["cartpole", "pendulum"])
def test_space_info_matches_gymnasium(env_id):
    env = _env(env_id)
    ref = gymnasium.make(env_id, disable_env_checker=True)
    assert env.observation_space == ref.observation_space
    assert env.action_space == ref.action_space
    assert env.obs_shape == ref.observation_space.shape
    assert env.max_episode_steps == gymnasium.spec(env_id).max_episode_steps
    if env_id == CARTPOLE:
        assert env.discrete and env.num_actions == 2 and env.action_shape == ()
        with pytest.raises(AttributeError, match="Discrete"):
            _ = env.action_low
    else:
        assert not env.discrete and env.action_shape == (1,)
        np.testing.assert_array_equal(env.action_low, np.array([-2.0], np.float32))
        np.testing.assert_array_equal(env.action_high, np.array([2.0], np.float32))
        with pytest.raises(AttributeError, match="continuous"):
            _ = env.num_actions


def test_registry_helpers():
    ids = jax_env_ids()
    assert ids == sorted(ids)
    assert {"phys2d/CartPole-v0", CARTPOLE, PENDULUM} <= set(ids)
    assert not any(i.startswith("tabular/") for i in ids)
    assert is_jax_env(CARTPOLE) and is_jax_env(PENDULUM)
    assert not is_jax_env("CartPole-v1")
    assert not is_jax_env("tabular/Blackjack-v0")
    assert not is_jax_env("NoSuchEnv-v0")
    assert make("phys2d/CartPole-v0").max_episode_steps == 200
    assert make(PENDULUM).max_episode_steps == 200


# ------------------------------------------------------------------------------ autoreset


def test_vmapped_scan_rollout_terminates_and_autoresets():
    env = _env(CARTPOLE)
    num_envs, num_steps = 8, 1000
    states, step_keys, ts = _rollout(env, jax.random.key(42), num_envs, num_steps)
    assert ts.obs.shape == (num_steps, num_envs, 4)
    assert ts.reward.shape == (num_steps, num_envs)

    terminated, truncated = np.asarray(ts.terminated), np.asarray(ts.truncated)
    done = terminated | truncated
    assert terminated.sum() > 8 * num_envs  # random CartPole episodes last ~20 steps
    assert not (terminated & truncated).any()

    # Step counters: +1 every step, back to 0 in the state after a done step.
    step = np.asarray(states.step)  # step counter of the state each transition started from
    np.testing.assert_array_equal(step[1:], np.where(done[:-1], 0, step[:-1] + 1))
    assert (step[1:][done[:-1]] == 0).all()

    # obs equals next_obs except on done steps, where obs is the new episode's first observation:
    # exactly the observation of reset() with the reset half of the step key.
    obs, next_obs = np.asarray(ts.obs), np.asarray(ts.next_obs)
    np.testing.assert_array_equal(obs[~done], next_obs[~done])
    assert (np.abs(obs[done] - next_obs[done]).max(axis=-1) > 0).all()
    reset_keys = jax.vmap(lambda k: jax.random.split(k)[1])(step_keys[done])
    _, reset_obs = jax.vmap(env.reset)(reset_keys)
    np.testing.assert_array_equal(obs[done], np.asarray(reset_obs))
    assert (np.abs(obs[done]) <= 0.05).all()  # CartPole's initial-state range
    # The state after a done step starts from that observation (CartPole observes its state).
    np.testing.assert_array_equal(np.asarray(states.func_state)[1:][done[:-1]], obs[:-1][done[:-1]])
    # next_obs of a terminated step is outside the pole-angle or cart-position bounds.
    final = next_obs[terminated]
    assert ((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 12 * 2 * np.pi / 360)).all()


def test_termination_at_the_time_limit_is_not_truncation():
    """Episodes that terminate on their last allowed step are terminated, not truncated."""
    limit = 10
    env = _env(CARTPOLE, limit)
    states, _, ts = _rollout(env, jax.random.key(3), num_envs=8, num_steps=1000)
    terminated, truncated = np.asarray(ts.terminated), np.asarray(ts.truncated)
    at_limit = np.asarray(states.step) + 1 == limit
    assert (terminated & at_limit).sum() > 0  # the case under test occurs
    assert not (terminated & truncated).any()
    np.testing.assert_array_equal(truncated, at_limit & ~terminated)
    assert truncated.sum() > 0


def test_truncation_at_max_episode_steps():
    env = make(CARTPOLE, max_episode_steps=5)
    assert env.max_episode_steps == 5

    # Alternating 0, 1, 0, 1, ... by scan index keeps the pole up far longer than 5 steps.
    @jax.jit
    def run(key):
        state, _ = jax.vmap(env.reset)(jax.random.split(key, 4))

        def body(state, inp):
            t, key = inp
            actions = jnp.full((4,), t % 2, jnp.int32)
            state, ts = jax.vmap(env.step)(state, actions, jax.random.split(key, 4))
            return state, (state.step, ts)

        return lax.scan(body, state, (jnp.arange(12), jax.random.split(key, 12)))[1]

    steps, ts = run(jax.random.key(7))
    terminated, truncated = np.asarray(ts.terminated), np.asarray(ts.truncated)
    assert not terminated.any()
    expected = np.zeros((12, 4), bool)
    expected[[4, 9]] = True  # the 5th step of each episode
    np.testing.assert_array_equal(truncated, expected)
    np.testing.assert_array_equal(np.asarray(steps)[:, 0], [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2])
    # On truncation next_obs is the real 5th observation, obs the next episode's first.
    assert (np.asarray(ts.obs)[4] != np.asarray(ts.next_obs)[4]).any(axis=-1).all()


def test_pendulum_never_terminates_and_truncates_at_200():
    env = _env(PENDULUM)
    _, _, ts = _rollout(env, jax.random.key(1), num_envs=2, num_steps=450)
    assert not np.asarray(ts.terminated).any()
    truncated = np.asarray(ts.truncated)
    expected = np.zeros_like(truncated)
    expected[[199, 399]] = True
    np.testing.assert_array_equal(truncated, expected)


def test_continuous_actions_are_clipped_to_the_box():
    # Pendulum clips torque to +-2 itself, so narrow the Box to see JaxEnv's own clipping.
    env = dataclasses.replace(_env(PENDULUM), action_space=gymnasium.spaces.Box(-1.0, 1.0, (1,)))
    state, _ = env.reset(jax.random.key(0))
    key = jax.random.key(1)
    _, big = env.step(state, jnp.array([1.7]), key)
    _, bound = env.step(state, jnp.array([1.0]), key)
    _, inside = env.step(state, jnp.array([0.5]), key)
    np.testing.assert_array_equal(big.next_obs, bound.next_obs)
    np.testing.assert_array_equal(big.reward, bound.reward)
    assert not np.array_equal(inside.next_obs, bound.next_obs)


def test_wrong_action_shape_is_rejected():
    env = _env(PENDULUM)
    state, _ = env.reset(jax.random.key(0))
    with pytest.raises(AssertionError):
        env.step(state, jnp.zeros(()), jax.random.key(1))
    cartpole = _env(CARTPOLE)
    state, _ = cartpole.reset(jax.random.key(0))
    with pytest.raises(TypeError, match="integer"):
        cartpole.step(state, jnp.float32(1.0), jax.random.key(1))


def test_works_under_pmap():
    env = _env(CARTPOLE)
    keys = jax.random.split(jax.random.key(0), 2)
    state, obs = jax.pmap(env.reset)(keys)
    _, ts = jax.pmap(env.step)(state, jnp.ones((2,), jnp.int32), keys)
    assert obs.shape == (2, 4) and ts.obs.shape == (2, 4)


# ---------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize(
    ("env_id", "func_env_cls"),
    [(CARTPOLE, CartPoleFunctional), (PENDULUM, PendulumFunctional)],
    ids=["cartpole", "pendulum"],
)
def test_matches_gymnasium_func_env_step_by_step(env_id, func_env_cls):
    """Key use, as documented on JaxEnv: reset(key) -> initial(key), observation(state, key);
    step(state, action, key) -> step_key = split(key)[0] for transition/observation/reward/
    terminal. The reference is a fresh gymnasium FuncEnv with its default params, called eagerly.
    """
    env = _env(env_id)
    ref = func_env_cls()
    key = jax.random.key(123)
    reset_key, key = jax.random.split(key)
    state, obs = jax.jit(env.reset)(reset_key)
    ref_state = ref.initial(reset_key)
    np.testing.assert_array_equal(obs, ref.observation(ref_state, reset_key))

    step = jax.jit(env.step)
    num_steps = 8  # random CartPole cannot terminate this early (it needs ~10+ steps)
    for _ in range(num_steps):
        action_key, step_key, key = jax.random.split(key, 3)
        action = _random_action(env, action_key)
        state, ts = step(state, action, step_key)

        k = jax.random.split(step_key)[0]
        ref_next = ref.transition(ref_state, action, k)
        ref_reward = ref.reward(ref_state, action, ref_next, k)
        ref_terminal = ref.terminal(ref_next, k)
        ref_state = ref_next

        assert not bool(ref_terminal) and not bool(ts.terminated)
        np.testing.assert_allclose(ts.next_obs, ref.observation(ref_next, k), **_EQUIV_TOL)
        np.testing.assert_allclose(ts.obs, ts.next_obs)
        np.testing.assert_allclose(ts.reward, ref_reward, **_EQUIV_TOL)
        np.testing.assert_allclose(state.func_state, ref_state, **_EQUIV_TOL)


class _NoisyCartPole(CartPoleFunctional):
    """CartPole whose transition and observation consume their key (gymnasium's ignore it)."""

    def transition(self, state, action, rng=None, params=None):
        next_state = super().transition(state, action, rng, params)
        return next_state + 1e-3 * jax.random.normal(jax.random.fold_in(rng, 1), (4,))

    def observation(self, state, rng, params=None):
        return state + 1e-3 * jax.random.normal(jax.random.fold_in(rng, 2), (4,))


def test_keys_reach_the_func_env_as_documented():
    """A FuncEnv that uses its keys sees exactly the documented ones (also: JaxEnv is generic)."""
    ref = _NoisyCartPole()
    env = JaxEnv(
        id="test/NoisyCartPole",
        func_env=ref,
        params=ref.get_default_params(),
        max_episode_steps=None,
        observation_space=ref.observation_space,
        action_space=ref.action_space,
    )
    params = ref.get_default_params()
    reset_key, step_key = jax.random.split(jax.random.key(4))
    state, obs = jax.jit(env.reset)(reset_key)
    ref_state = ref.initial(reset_key, params)
    np.testing.assert_allclose(obs, ref.observation(ref_state, reset_key, params), **_EQUIV_TOL)

    state, ts = jax.jit(env.step)(state, jnp.int32(1), step_key)
    k = jax.random.split(step_key)[0]
    ref_next = ref.transition(ref_state, 1, k, params)
    np.testing.assert_allclose(state.func_state, ref_next, **_EQUIV_TOL)
    np.testing.assert_allclose(ts.next_obs, ref.observation(ref_next, k, params), **_EQUIV_TOL)
    assert not ts.truncated  # max_episode_steps=None: no time limit


def test_reset_matches_gymnasium_functional_jax_env():
    """Gymnasium's FunctionalJaxEnv.reset(seed=s) uses split(key(s))[0] for initial/observation."""
    gym_env = gymnasium.make(CARTPOLE, disable_env_checker=True).unwrapped
    gym_obs, _ = gym_env.reset(seed=5)
    _, obs = _env(CARTPOLE).reset(jax.random.split(jax.random.PRNGKey(5))[0])
    np.testing.assert_array_equal(obs, gym_obs)


# ---------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("env_id", ENV_IDS, ids=["cartpole", "pendulum"])
def test_same_key_gives_bitwise_identical_trajectories(env_id):
    env = _env(env_id)
    first = _rollout(env, jax.random.key(9), num_envs=4, num_steps=250)
    again = _rollout(env, jax.random.key(9), num_envs=4, num_steps=250)
    # A separately built env and a separate compilation must reproduce the same bits too.
    fresh = _rollout_fn(make(env_id), 4, 250)(jax.random.key(9))
    for other in (again, fresh):
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(other), strict=True):
            np.testing.assert_array_equal(_data(a), _data(b))
    different = _rollout(env, jax.random.key(10), num_envs=4, num_steps=250)
    assert not np.array_equal(first[2].next_obs, different[2].next_obs)


def _is_key(x) -> bool:
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _data(x):
    return jax.random.key_data(x) if _is_key(x) else x


# --------------------------------------------------------------------------------- errors


def test_unknown_id_is_named_with_available_ids():
    with pytest.raises(ValueError, match=r"unknown env id 'NoSuchEnv-v0'.*phys2d/CartPole-v1"):
        make("NoSuchEnv-v0")


def test_host_only_id_points_to_sebulba():
    with pytest.raises(
        ValueError,
        match=r"'CartPole-v1' has no functional JAX form.*sebulba.*phys2d/Pendulum-v0",
    ):
        make("CartPole-v1")


def test_tabular_ids_are_excluded_with_reason():
    with pytest.raises(ValueError, match=r"tabular/\* ids are excluded.*phys2d/CartPole-v1"):
        make("tabular/Blackjack-v0")


@pytest.mark.parametrize("bad", [0, -3, 2.5, True], ids=["zero", "negative", "float", "bool"])
def test_bad_max_episode_steps(bad):
    with pytest.raises(ValueError, match="max_episode_steps must be a positive int"):
        make(CARTPOLE, max_episode_steps=bad)


def test_error_messages_are_one_line():
    for env_id in ("NoSuchEnv-v0", "CartPole-v1", "tabular/Blackjack-v0"):
        with pytest.raises(ValueError) as info:
            make(env_id)
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ step_batch


@functools.cache
def _batch_vs_vmap_fn(env: JaxEnv, num_envs: int, num_steps: int):
    """jit of two rollouts from the same keys and actions: one with `vmap(env.step)`, one with
    `env.step_batch`; returns both `(final state, timesteps)`."""

    @jax.jit
    def run(key):
        reset_key, key = jax.random.split(key)
        state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(step_fn):
            def f(state, key):
                action_key, step_key = jax.random.split(key)
                actions = jax.vmap(_random_action, in_axes=(None, 0))(
                    env, jax.random.split(action_key, num_envs)
                )
                return step_fn(state, actions, jax.random.split(step_key, num_envs))

            return f

        keys = jax.random.split(key, num_steps)
        return (
            lax.scan(body(jax.vmap(env.step)), state, keys),
            lax.scan(body(env.step_batch), state, keys),
        )

    return run


@pytest.mark.parametrize(
    ("env_id", "limit"), [(CARTPOLE, None), (CARTPOLE, 10), (PENDULUM, None)],
    ids=["cartpole", "cartpole-limit-10", "pendulum"],
)  # fmt: skip
def test_step_batch_is_vmapped_step_bitwise(env_id, limit):
    env = _env(env_id, limit)
    vmapped, batched = _batch_vs_vmap_fn(env, 8, 450)(jax.random.key(11))
    ts = vmapped[1]
    assert np.asarray(ts.done).any() and not np.asarray(ts.done).all()  # both branches ran
    for a, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(batched), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("costly", [False, True], ids=["cheap-reset", "costly-reset"])
def test_step_batch_off_the_cpu_uses_a_cond_only_for_costly_resets(monkeypatch, costly):
    """On a GPU a `lax.cond` waits for its predicate on the host each step: `step_batch` is
    `vmap(step)` there (no cond) unless the env's reset is costly (brax); bitwise either way."""
    env = dataclasses.replace(_env(CARTPOLE, 10), costly_reset=costly)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert _step_batch_has_a_cond(env) == costly
    vmapped, batched = _batch_vs_vmap_fn(env, 8, 60)(jax.random.key(11))
    assert np.asarray(vmapped[1].done).any()
    for a, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(batched), strict=True):
        np.testing.assert_array_equal(a, b)


def test_step_batch_on_the_cpu_skips_resets_under_a_cond():
    env = _env(CARTPOLE)
    assert not env.costly_reset and jax.default_backend() == "cpu"
    assert _step_batch_has_a_cond(env)


def _step_batch_has_a_cond(env: JaxEnv) -> bool:
    """Whether `step_batch` on 4 CartPole envs compiles to a program with a conditional."""
    state, _ = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 4))
    lowered = jax.jit(env.step_batch).lower(
        state, jnp.zeros((4,), jnp.int32), jax.random.split(jax.random.key(1), 4)
    )
    return " conditional(" in lowered.compile().as_text()


def test_step_batch_checks_action_shapes():
    env = _env(PENDULUM)
    state, _ = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 2))
    with pytest.raises(AssertionError):
        env.step_batch(state, jnp.zeros((2,)), jax.random.split(jax.random.key(1), 2))
