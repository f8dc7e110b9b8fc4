"""The contract every schedule obeys (DESIGN.md "Schedules"), for every schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules as S
from tests.schedules._cases import CASE_IDS, CASES, signals

JIT = [pytest.param(lambda f: f, id="nojit"), pytest.param(jax.jit, id="jit")]
case_param = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


def _spec(tree):
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def _bitwise_equal(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) and x.dtype == y.dtype
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ) and jax.tree.structure(a) == jax.tree.structure(b)


def _run(case, values, wrap=lambda f: f):
    sched = case.make()
    update = wrap(lambda s, x: sched.update(s, **signals(case, x)))
    state = sched.init()
    for v in values:
        state = update(state, jnp.float32(v))
    return sched, state


@case_param
def test_is_an_optax_stateful_schedule(case):
    assert isinstance(case.make(), optax.schedules.StatefulSchedule)


@case_param
def test_missing_signal_names_schedule_key_and_keys(case):
    sched = case.make()
    others = {k: v for k, v in signals(case, 1.0).items() if k != case.signal}
    with pytest.raises(S.MissingSignalError) as err:
        jax.jit(lambda s: sched.update(s, **others))(sched.init())
    msg = str(err.value)
    assert repr(case.signal) in msg
    assert "got keys" in msg and "grad_norm" in msg


@case_param
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("wrap", JIT)
def test_nonfinite_signal_leaves_state_unchanged(case, bad, wrap):
    sched, state = _run(case, [1.0, 2.0, 0.5, 3.0], wrap)
    new = wrap(lambda s: sched.update(s, **signals(case, bad)))(state)
    if case.id == "spike_guard":
        # Documented exception: a non-finite guarded signal backs off; all else is untouched.
        np.testing.assert_allclose(new.scale, state.scale * 0.5)
        new = new._replace(scale=state.scale)
    if case.id == "warmup_kl":
        # warmup counts updates, not signals; its inner schedule's state must not move.
        new, state = new.inner, state.inner
    assert _bitwise_equal(new, state)


@case_param
def test_zero_episode_count_ignores_episode_statistics(case):
    sched, state = _run(case, [1.0, 2.0, 3.0])
    new = sched.update(state, **signals(case, 123.0, count=0.0))
    if case.signal in S.EPISODE_SIGNALS:
        assert _bitwise_equal(new, state)
    else:  # episode_count only qualifies episode statistics
        assert not _bitwise_equal(new, state) or case.id == "plateau_min_grow"


@case_param
@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_state_spec_is_stable_through_scan_and_cond(case, param_dtype):
    del param_dtype  # schedule state never depends on it; checked in the inject test below
    sched = case.make()
    init = sched.init()
    xs = jnp.linspace(case.low, case.high, 17, dtype=jnp.float32)

    def body(s, x):
        s = sched.update(s, **signals(case, x))
        s = jax.lax.cond(x > xs[8], lambda t: sched.update(t, **signals(case, x)), lambda t: t, s)
        return s, sched(s)

    final, values = jax.jit(lambda s: jax.lax.scan(body, s, xs))(init)
    assert _spec(final) == _spec(init)
    for leaf in jax.tree.leaves(init):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    assert values.dtype == jnp.float32


@case_param
def test_jit_matches_eager(case):
    values = [1.0, 0.5, 3.0, np.nan, 2.0, 0.001, 8.0, 2.0]
    _, eager = _run(case, values)
    _, jitted = _run(case, values, jax.jit)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@case_param
def test_no_retrace_on_second_call(case):
    sched = case.make()
    traces = []

    @jax.jit
    def step(s, x):
        traces.append(1)
        return sched.update(s, **signals(case, x))

    s = step(sched.init(), jnp.float32(1.0))
    s = step(s, jnp.float32(2.0))
    step(s, jnp.float32(3.0))
    assert len(traces) == 1


@case_param
def test_vmap_over_states_and_signals(case):
    sched = case.make()
    states = jax.vmap(lambda _: sched.init())(jnp.arange(3))
    xs = jnp.array([1.0, 2.0, jnp.nan], jnp.float32)
    out = jax.vmap(lambda s, x: sched.update(s, **signals(case, x)))(states, xs)
    for i, x in enumerate(xs):
        single = sched.update(sched.init(), **signals(case, x))
        for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-6)


@case_param
def test_pmap_two_devices(case):
    sched = case.make()
    devices = jax.devices()[:2]
    states = jax.tree.map(lambda x: jnp.stack([x, x]), sched.init())
    xs = jnp.array([1.0, 2.0], jnp.float32)
    out = jax.pmap(lambda s, x: sched.update(s, **signals(case, x)), devices=devices)(states, xs)
    single = sched.update(sched.init(), **signals(case, xs[1]))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(a[1], b, rtol=1e-6)


@case_param
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_inside_unmodified_inject_hyperparams(case, dtype):
    sched = case.make()
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=sched)
    params = {"w": jnp.ones((3,), dtype)}
    state = opt.init(params)

    @jax.jit
    def step(params, state, x):
        grads = jax.tree.map(jnp.ones_like, params)
        updates, state = opt.update(grads, state, params, **signals(case, x))
        return optax.apply_updates(params, updates), state

    for x in [1.0, 2.0, 0.5]:
        params, state = step(params, state, jnp.float32(x))
    lr = state.hyperparams["learning_rate"]
    assert lr.dtype == jnp.float32  # stateful outputs stay float32 even with bf16 params
    assert np.float32(case.bounds[0]) <= lr <= np.float32(case.bounds[1])
    assert _spec(state.hyperparams_states["learning_rate"]) == _spec(sched.init())


@case_param
def test_constants_live_in_state_so_lowering_does_not_change(case):
    """Two schedules differing only in constants lower to the same program (issue 7)."""
    import copy

    a = case.make()
    b = copy.deepcopy(a)
    for name in ("factor", "target", "init_value", "start_value", "ratio", "min_value"):
        for obj in (b, getattr(b, "schedule", None)):
            if obj is not None and isinstance(getattr(obj, name, None), float):
                setattr(obj, name, getattr(obj, name) * 1.5 + 1e-3)
    if hasattr(b, "values"):
        b.values = tuple(v * 2 for v in b.values)
    differs = [
        not np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a.init()), jax.tree.leaves(b.init()), strict=True)
    ]
    assert any(differs), "the test must really change a constant"

    def text(s):
        return (
            jax.jit(lambda st, x: s.update(st, **signals(case, x)))
            .lower(s.init(), jnp.float32(1.0))
            .as_text()
        )

    assert text(a) == text(b)


EPISODE_CASES = [c for c in CASES if c.signal in S.EPISODE_SIGNALS]


@pytest.mark.parametrize("case", EPISODE_CASES, ids=[c.id for c in EPISODE_CASES])
def test_a_per_env_episode_count_is_refused_not_broadcast(case):
    # A count per env (a vector) broadcast every leaf of the state to its shape: each env got
    # its own learning rate, with no error outside a scan.
    sched = case.make()
    bad = signals(case, 1.0, count=jnp.array([1.0, 0.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="'episode_count' must be a scalar, got shape \\(4,\\)"):
        sched.update(sched.init(), **bad)


@case_param
def test_a_per_device_state_updates_under_shard_map(case):
    # pmap's layout on shard_map (a state per device, synced signals): bandit's hold reset was
    # built from constants, and the two branches of its cond differed in their device typing.
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    from inject_rl.signals import sync

    if jax.device_count() < 2:
        pytest.skip("needs 2 devices (conftest sets 4 fake CPU devices)")
    sched = case.make()
    mesh = Mesh(np.array(jax.devices()[:2]), ("i",))

    def step(state, x):
        synced = sync(signals(case, x[0]), "i")
        state = jax.tree.map(lambda leaf: leaf[0], state)
        return jax.tree.map(lambda leaf: leaf[None], sched.update(state, **synced))

    stacked = jax.tree.map(lambda leaf: jnp.stack([leaf, leaf]), sched.init())
    run = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P("i"), P("i")), out_specs=P("i")))
    for v in ([1.0, 3.0], [2.0, 0.5], [4.0, 4.0], [0.1, 9.0]):
        stacked = run(stacked, jnp.array(v, jnp.float32))
    for leaf in jax.tree.leaves(stacked):  # the replicas stay equal
        np.testing.assert_array_equal(np.asarray(leaf)[0], np.asarray(leaf)[1])
