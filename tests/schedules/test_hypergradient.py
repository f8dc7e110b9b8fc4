"""`hypergradient`: hand-computed sequences, defaults, validation, and the schedule contract.

`tests/schedules/_cases.py` is a fixed list, not a registry, so the contract suite's own test
functions are called here with a hypergradient case (the same assertions, one place to change).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules as S
from tests.schedules import test_contract as contract
from tests.schedules import test_properties as properties
from tests.schedules._cases import Case

# Default bounds [1e-3 / 1000, 1000 * 1e-3]; every=2 exercises the window in the contract tests.
CASE = Case(
    "hypergradient",
    lambda: S.hypergradient(1e-3, beta=0.1, every=2),
    "update_cos",
    -1.0,
    1.0,
    (1e-6, 1.0),
)


def trace(sched, values, **extra):
    """Value after each update, for a sequence of `update_cos` values (jitted)."""
    state, out = sched.init(), []
    update = jax.jit(lambda s, x: sched.update(s, update_cos=x, **extra))
    for v in values:
        state = update(state, np.float32(v))
        out.append(float(sched(state)))
    return out


# ----------------------------------------------------------------------------- golden sequences


def test_multiplies_by_one_plus_beta_cos():
    s = S.hypergradient(1.0, beta=0.5, min_value=0.1, max_value=4.0)
    # x1.5, x1.5, x0.5, x1.25, NaN ignored, x0.5, x1.5 three times: all exact in float32.
    got = trace(s, [1, 1, -1, 0.5, np.nan, -1, 1, 1, 1])
    assert got == [1.5, 2.25, 1.125, 1.40625, 1.40625, 0.703125, 1.0546875, 1.58203125, 2.373046875]


def test_clips_to_bounds_and_leaves_them():
    s = S.hypergradient(1.0, beta=0.5, min_value=0.3, max_value=2.0)
    # 2.25 -> 2, 3 -> 2; then halvings 1, 0.5, 0.25 -> 0.3, 0.15 -> 0.3; one step up leaves the min.
    got = trace(s, [1, 1, 1, -1, -1, -1, -1, 1])
    assert got == pytest.approx([1.5, 2.0, 2.0, 1.0, 0.5, 0.3, 0.3, 0.45], rel=1e-7)


def test_every_acts_on_the_mean_of_counted_values():
    s = S.hypergradient(1.0, beta=0.5, max_value=4.0, every=3)
    # Window 1: 1, 0.5, (inf not counted), 0 -> mean 0.5 -> x1.25; window 2: mean -1 -> x0.5.
    got = trace(s, [1, 0.5, np.inf, 0, -1, -1, -1])
    assert got == [1, 1, 1, 1.25, 1.25, 1.25, 0.625]


def test_zero_cosine_leaves_the_value():
    assert trace(S.hypergradient(3e-4), [0.0] * 5) == pytest.approx([3e-4] * 5, rel=1e-7)


def test_custom_signal_name():
    s = S.hypergradient(1.0, beta=0.5, signal="my_cos")
    state = s.update(s.init(), my_cos=1.0, update_cos=-1.0)
    assert float(s(state)) == 1.5


# ----------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("init", [1e-5, 3e-4, 1e-3, 0.5], ids=["1e-5", "3e-4", "1e-3", "0.5"])
def test_default_bounds_are_plateaus(init):
    lr = S.hypergradient(init)
    assert (lr.min_value, lr.max_value) == (
        S.plateau(init).min_value,
        S.plateau(init).max_value,
    )
    assert (lr.min_value, lr.max_value) == pytest.approx((init / 1000, init * 1000))
    fast = S.hypergradient(init, beta=0.5)
    assert trace(fast, [1.0] * 200)[-1] == pytest.approx(init * 1000, rel=1e-6)
    assert trace(fast, [-1.0] * 30)[-1] == pytest.approx(init / 1000, rel=1e-6)


def test_repr_and_spec_round_trip():
    lr = S.hypergradient(1e-3)
    assert repr(lr) == (
        "hypergradient(0.001, beta=0.01, signal='update_cos', min_value=1e-06, max_value=1.0, "
        "every=1)"
    )
    for spec in ["hypergradient(1e-3)", "hypergradient(3e-4, beta=0.05, every=10, max_value=1)"]:
        sched = S.parse(spec)
        assert isinstance(sched, S.Hypergradient)
        assert S.to_spec(S.parse(S.to_spec(sched))) == S.to_spec(sched)
    assert S.parse("warmup(hypergradient(1e-3), steps=10)").schedule.beta == 0.01


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta": 0.0}, r"beta must be in \(0.0, 1.0\)"),
        ({"beta": 1.0}, r"beta must be in \(0.0, 1.0\)"),
        ({"beta": -0.1}, "beta must be in"),
        ({"beta": float("nan")}, "beta must be in"),
        ({"max_value": 1e-4}, "init_value must be in"),
        ({"min_value": 2e-2, "max_value": 1e-2}, "max_value must be in"),
        ({"min_value": -1.0}, "min_value must be in"),
        ({"every": 0}, "every must be an integer >= 1"),
        ({"signal": "not a name"}, "signal must be an extra_args keyword name"),
    ],
    ids=[
        "beta0",
        "beta1",
        "beta_neg",
        "beta_nan",
        "above_max",
        "min_gt_max",
        "min_neg",
        "every0",
        "signal",
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.hypergradient(1e-3, **kwargs)


def test_negative_init_needs_explicit_bounds():
    with pytest.raises(ValueError, match="init_value must be >= 0 for the default bounds"):
        S.hypergradient(-1.0)


def test_missing_signal_points_at_update_alignment():
    lr = S.hypergradient(1e-3)
    with pytest.raises(S.MissingSignalError) as err:
        jax.jit(lambda s: lr.update(s, kl=0.01, loss=1.0))(lr.init())
    msg = str(err.value)
    assert "hypergradient" in msg and "'update_cos'" in msg and "got keys ['kl', 'loss']" in msg
    assert "inject_rl.optim.update_alignment" in msg
    # A user's own signal name gets the plain message.
    own = S.hypergradient(1e-3, signal="my_cos")
    with pytest.raises(S.MissingSignalError, match="'my_cos'") as err:
        own.update(own.init(), kl=0.01)
    assert "update_alignment" not in str(err.value)


# ----------------------------------------------------------------------------- the contract

JIT = {"nojit": lambda f: f, "jit": jax.jit}
CONTRACT = {
    "stateful_schedule": lambda: contract.test_is_an_optax_stateful_schedule(CASE),
    "missing_signal": lambda: contract.test_missing_signal_names_schedule_key_and_keys(CASE),
    **{
        f"nonfinite_{name}_{w}": (
            lambda bad=bad, w=w: contract.test_nonfinite_signal_leaves_state_unchanged(
                CASE, bad, JIT[w]
            )
        )
        for name, bad in [("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)]
        for w in JIT
    },
    "zero_episode_count": lambda: contract.test_zero_episode_count_ignores_episode_statistics(CASE),
    "scan_and_cond": lambda: contract.test_state_spec_is_stable_through_scan_and_cond(
        CASE, jnp.float32
    ),
    "jit_matches_eager": lambda: contract.test_jit_matches_eager(CASE),
    "no_retrace": lambda: contract.test_no_retrace_on_second_call(CASE),
    "vmap_states_signals": lambda: contract.test_vmap_over_states_and_signals(CASE),
    "pmap_two_devices": lambda: contract.test_pmap_two_devices(CASE),
    **{
        f"inject_hyperparams_{name}": (
            lambda d=d: contract.test_inside_unmodified_inject_hyperparams(CASE, d)
        )
        for name, d in [("f32", jnp.float32), ("bf16", jnp.bfloat16)]
    },
    "constants_in_state": lambda: contract.test_constants_live_in_state_so_lowering_does_not_change(
        CASE
    ),
    "random_sequences": lambda: properties.test_random_sequences(CASE),
}


@pytest.mark.parametrize("check", list(CONTRACT.values()), ids=list(CONTRACT))
def test_contract(check):
    check()


# ----------------------------------------------------------------------------- constants as state

INITS = [1e-5, 3e-4, 1e-2]
COSINES = [1.0, 0.5, -0.25, 1.0, np.nan, -1.0]


def _values(init, beta):
    s = S.hypergradient(init, beta=beta)
    state, out = s.init(), [s(s.init())]
    for x in COSINES:
        state = s.update(state, update_cos=x)
        out.append(s(state))
    return jnp.stack(out)


def test_vmap_over_initial_values_and_beta():
    betas = [0.01, 0.1, 0.5]
    got = jax.vmap(_values)(jnp.array(INITS, jnp.float32), jnp.array(betas, jnp.float32))
    pairs = zip(INITS, betas, strict=True)
    want = [_values(float(jnp.float32(i)), float(jnp.float32(b))) for i, b in pairs]
    np.testing.assert_allclose(got, jnp.stack(want), rtol=1e-6)
    # Default bounds follow each member's initial value.
    states = jax.vmap(lambda x: S.hypergradient(x).init())(jnp.array(INITS, jnp.float32))
    np.testing.assert_allclose(states.max_value, np.array(INITS, np.float32) * 1000, rtol=1e-6)
    np.testing.assert_allclose(states.min_value, np.array(INITS, np.float32) / 1000, rtol=1e-6)


def test_one_program_for_every_constant():
    """Changing init_value, beta or bounds changes the state, never the compiled program."""
    traces = []

    @jax.jit
    def run(state, xs):
        traces.append(1)
        sched = S.hypergradient(1.0)  # the update reads constants from `state` only
        return jax.lax.scan(lambda s, x: (sched.update(s, update_cos=x), None), state, xs)[0]

    xs = jnp.array([1.0, -0.5, 0.25], jnp.float32)
    a = run(S.hypergradient(1e-3, beta=0.1).init(), xs)
    b = run(S.hypergradient(2e-4, beta=0.3, min_value=1e-4, max_value=5e-4).init(), xs)
    assert len(traces) == 1
    assert float(a.value) == pytest.approx(1e-3 * 1.1 * 0.95 * 1.025, rel=1e-6)
    assert float(b.value) == pytest.approx(min(2e-4 * 1.3, 5e-4) * 0.85 * 1.075, rel=1e-6)


def test_inside_injected_adam_is_a_scan_carry_with_bf16_params():
    from inject_rl.optim import hyperparams, injected

    opt = injected(optax.adam, learning_rate=S.hypergradient(1e-3, beta=0.1))
    params = jnp.ones(3, jnp.bfloat16)

    def step(carry, x):
        params, state = carry
        updates, state = opt.update(jnp.ones(3, jnp.bfloat16), state, params, update_cos=x)
        return (optax.apply_updates(params, updates), state), None

    init = (params, opt.init(params))
    (_, state), _ = jax.jit(lambda c: jax.lax.scan(step, c, jnp.ones(4, jnp.float32)))(init)
    assert jax.tree.structure(state) == jax.tree.structure(init[1])
    # Four updates at cosine 1: the fourth used 1e-3 * 1.1**3.
    assert float(hyperparams(state)["learning_rate"]) == pytest.approx(1e-3 * 1.1**3, rel=1e-6)
