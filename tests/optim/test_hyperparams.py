"""Tests for `inject_rl.optim.hyperparams` and `set_hyperparam`."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules
from inject_rl.optim import bounds, hyperparams, injected, set_hyperparam

from ._schedules import Constant


def _sgd(lr):
    return optax.inject_hyperparams(optax.sgd)(learning_rate=lr)


def _sgd_inside_injection(learning_rate):
    # An injected factory that itself builds an injected transform, directly as its state.
    return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate * 2)


def _scale_then_sgd(scale):
    return optax.chain(optax.scale(scale), _sgd(0.1))


def _scaled_sgd(scale, learning_rate):
    return optax.chain(optax.scale(scale), _sgd(learning_rate))


PARAMS = {"pi": jnp.ones(2), "v": jnp.ones(1)}
LABELS = {"pi": "actor", "v": "critic"}

# (optimizer, expected hyperparams after init)
STRUCTURES = {
    "single": (_sgd(0.1), {"learning_rate": 0.1}),
    "chain_unique": (
        optax.chain(optax.clip(1.0), injected(optax.adam, learning_rate=0.1)),
        {"learning_rate": 0.1, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0},
    ),
    "chain_shared": (
        optax.chain(_sgd(0.1), _sgd(0.2)),
        {"0/learning_rate": 0.1, "1/learning_rate": 0.2},
    ),
    "named_chain": (
        optax.named_chain(("actor", _sgd(0.1)), ("critic", _sgd(0.2))),
        {"actor/learning_rate": 0.1, "critic/learning_rate": 0.2},
    ),
    "multi_steps": (optax.MultiSteps(_sgd(0.1), every_k_schedule=2), {"learning_rate": 0.1}),
    "masked": (optax.masked(_sgd(0.1), {"pi": True, "v": False}), {"learning_rate": 0.1}),
    "partition": (
        optax.partition(
            {
                "actor": injected(optax.adam, learning_rate=0.1, b1=0.5),
                "critic": injected(optax.adam, learning_rate=Constant(0.2)),
            },
            LABELS,
        ),
        {
            "actor/learning_rate": 0.1,
            "actor/b1": 0.5,
            "actor/b2": 0.999,
            "actor/eps": 1e-8,
            "actor/eps_root": 0.0,
            "critic/learning_rate": 0.2,
            "critic/b1": 0.9,
            "critic/b2": 0.999,
            "critic/eps": 1e-8,
            "critic/eps_root": 0.0,
        },
    ),
    "multi_transform": (
        optax.multi_transform({"actor": _sgd(0.1), "critic": _sgd(0.2)}, LABELS),
        {"actor/learning_rate": 0.1, "critic/learning_rate": 0.2},
    ),
    "nested_distinct_names": (
        optax.inject_hyperparams(_scale_then_sgd)(scale=2.0),
        {"scale": 2.0, "learning_rate": 0.1},
    ),
    "nested_in_chain": (
        optax.inject_hyperparams(_scaled_sgd)(scale=3.0, learning_rate=0.1),
        {"scale": 3.0, "learning_rate": 0.1, "1/learning_rate": 0.1},
    ),
    "nested_directly": (
        optax.inject_hyperparams(_sgd_inside_injection)(learning_rate=0.1),
        {"learning_rate": 0.1, "inner_state/learning_rate": 0.2},
    ),
}


@pytest.mark.parametrize(
    ("opt", "expected"), list(STRUCTURES.values()), ids=list(STRUCTURES.keys())
)
def test_hyperparams_finds_every_injection(opt, expected):
    state = opt.init(PARAMS)
    got = hyperparams(state)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)
    # Still found after an update, with the same names.
    _, state = opt.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
    assert set(hyperparams(state)) == set(expected)


def test_tree_get_fails_where_hyperparams_works():
    # optax hazard: once scheduled, "learning_rate" names a value and a schedule state.
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=Constant(0.3))
    state = opt.init(jnp.zeros(3))
    with pytest.raises(KeyError, match="multiple values"):
        optax.tree_utils.tree_get(state, "learning_rate")
    np.testing.assert_allclose(hyperparams(state)["learning_rate"], 0.3)


def test_hyperparams_reports_value_used_by_last_update():
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(1.0, 0.0, 10))
    state = opt.init(jnp.zeros(1))
    for _ in range(3):
        _, state = opt.update(jnp.ones(1), state)
    np.testing.assert_allclose(hyperparams(state)["learning_rate"], 0.8)  # count 2's value


def test_hyperparams_legacy_state():
    state = optax.InjectHyperparamsState(
        count=jnp.zeros((), jnp.int32),
        hyperparams={"learning_rate": jnp.asarray(0.1)},
        inner_state=optax.EmptyState(),
    )
    np.testing.assert_allclose(hyperparams(state)["learning_rate"], 0.1)
    new = set_hyperparam(state, "learning_rate", 0.2)
    np.testing.assert_allclose(hyperparams(new)["learning_rate"], 0.2)


def test_hyperparams_without_injection_is_empty():
    assert hyperparams(optax.adam(0.1).init(jnp.zeros(2))) == {}


def test_replicated_state_keeps_leading_axis():
    opt = injected(optax.adam, learning_rate=Constant(0.1), b1=0.9)
    state = jax.vmap(opt.init)(jnp.zeros((4, 3)))
    values = hyperparams(state)
    assert values["learning_rate"].shape == (4,)
    assert values["b1"].shape == (4,)
    new = set_hyperparam(state, "b1", 0.5)
    assert hyperparams(new)["b1"].shape == (4,)
    np.testing.assert_allclose(hyperparams(new)["b1"], np.full(4, 0.5))
    per_replica = set_hyperparam(state, "b1", jnp.arange(4.0) / 10)
    np.testing.assert_allclose(hyperparams(per_replica)["b1"], np.arange(4.0) / 10, rtol=1e-6)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["nojit", "jit"])
def test_set_hyperparam_is_used_by_next_update(transform):
    opt = _sgd(0.1)
    grads = jnp.array([1.0, -2.0])
    state = opt.init(jnp.zeros(2))

    @transform
    def override_and_update(state, lr):
        state = set_hyperparam(state, "learning_rate", lr)
        return opt.update(grads, state)

    updates, new_state = override_and_update(state, 0.5)
    reference, _ = _sgd(0.5).update(grads, _sgd(0.5).init(jnp.zeros(2)))
    np.testing.assert_allclose(updates, reference)
    np.testing.assert_allclose(updates, -0.5 * grads)
    np.testing.assert_allclose(hyperparams(new_state)["learning_rate"], 0.5)


def test_set_hyperparam_does_not_mutate_input():
    opt = optax.chain(_sgd(0.1), _sgd(0.2))
    state = opt.init(jnp.zeros(2))
    before = jax.tree.map(np.asarray, state)
    new = set_hyperparam(state, "1/learning_rate", 0.7)
    # Input untouched, leaf for leaf; the output shares no mutable containers with it.
    jax.tree.map(np.testing.assert_array_equal, state, before)
    assert new[1].hyperparams is not state[1].hyperparams
    assert new[0].hyperparams is not state[0].hyperparams
    np.testing.assert_allclose(hyperparams(new)["1/learning_rate"], 0.7)
    np.testing.assert_allclose(hyperparams(new)["0/learning_rate"], 0.1)
    assert jax.tree.structure(new) == jax.tree.structure(state)


def test_set_hyperparam_qualified_name_in_partition():
    opt = optax.partition({"actor": _sgd(0.1), "critic": _sgd(0.1)}, LABELS)
    state = set_hyperparam(opt.init(PARAMS), "critic/learning_rate", 1.0)
    updates, _ = opt.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
    np.testing.assert_allclose(updates["pi"], -0.1 * np.ones(2))
    np.testing.assert_allclose(updates["v"], -1.0 * np.ones(1))


@pytest.mark.parametrize(
    ("dtype", "value"),
    [(jnp.float32, 1), (jnp.bfloat16, 0.5), (jnp.float32, np.float64(0.25))],
    ids=["int_to_f32", "float_to_bf16", "f64_to_f32"],
)
def test_set_hyperparam_keeps_dtype_and_shape(dtype, value):
    opt = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=dtype)(learning_rate=0.1)
    state = opt.init(jnp.zeros(2))
    new = hyperparams(set_hyperparam(state, "learning_rate", value))["learning_rate"]
    assert new.dtype == dtype
    assert new.shape == ()
    np.testing.assert_allclose(np.float32(new), value)


def test_set_hyperparam_rejects_scheduled():
    opt = injected(optax.adam, learning_rate=Constant(0.1))
    state = opt.init(jnp.zeros(2))
    with pytest.raises(ValueError, match="'learning_rate' is scheduled.*ignores overrides") as e:
        set_hyperparam(state, "learning_rate", 0.5)
    assert "\n" not in str(e.value)
    set_hyperparam(state, "b1", 0.5)  # the constant ones may be set


def test_set_hyperparam_rejects_unknown_and_lists_known():
    opt = optax.chain(_sgd(0.1), _sgd(0.2))
    state = opt.init(jnp.zeros(2))
    with pytest.raises(ValueError, match="'learning_rate'.*0/learning_rate, 1/learning_rate"):
        set_hyperparam(state, "learning_rate", 0.5)


def test_set_hyperparam_rejects_bad_shape():
    state = _sgd(0.1).init(jnp.zeros(2))
    with pytest.raises(ValueError, match="does not broadcast"):
        set_hyperparam(state, "learning_rate", jnp.ones(3))


def test_inject_hyperparams_docstring_example_without_mutation():
    # optax's own example: b1 scheduled, b2 overridden to 0.95 by mutating the state.
    linear_schedule = optax.piecewise_interpolate_schedule(
        "linear", init_value=0.1, boundaries_and_scales={100: 1.0}
    )
    scheduled_adam = optax.inject_hyperparams(optax.scale_by_adam)(b1=linear_schedule, b2=0.99)
    params = jnp.array([0.0, 0.0])
    state = scheduled_adam.init(params)
    updates, state = scheduled_adam.update(jnp.array([1.0, -3.0]), state)

    with pytest.raises(ValueError, match="scheduled"):
        set_hyperparam(state, "b1", 0.5)
    overridden = set_hyperparam(state, "b2", 0.95)
    assert float(hyperparams(state)["b2"]) == pytest.approx(0.99)  # input untouched

    grads = jnp.array([0.5, 2.0])
    updates, new_state = scheduled_adam.update(grads, overridden)
    b1 = float(hyperparams(new_state)["b1"])
    assert b1 == pytest.approx(float(linear_schedule(1)))  # the schedule's value at count 1
    np.testing.assert_allclose(hyperparams(new_state)["b2"], 0.95)

    # The same step from the same moments with a plain Adam using b2=0.95 ...
    reference, _ = optax.scale_by_adam(b1=b1, b2=0.95).update(grads, state.inner_state)
    np.testing.assert_allclose(updates, reference, rtol=1e-6)
    # ... and b2 really mattered: with b2=0.99 the step differs.
    unchanged, _ = optax.scale_by_adam(b1=b1, b2=0.99).update(grads, state.inner_state)
    assert not np.allclose(updates, unchanged, rtol=1e-3)


def test_bounds_of_a_stacked_state_are_per_member():
    # A population's state used to report member 0's bounds for everyone.
    def init(lr):
        return injected(optax.sgd, learning_rate=schedules.kl_target(lr)).init(jnp.zeros(2))

    low, high = bounds(jax.vmap(init)(jnp.array([1e-3, 1e-1])))["learning_rate"]
    np.testing.assert_allclose(low, [1e-6, 1e-4], rtol=1e-6)
    np.testing.assert_allclose(high, [1e-2, 1.0], rtol=1e-6)
    assert bounds(init(1e-3))["learning_rate"] == pytest.approx((1e-6, 1e-2))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("b2", -1.0, r"set_hyperparam: b2 must be in \[0, 1\), got b2=-1.0"),
        (
            "learning_rate",
            float("nan"),
            "learning_rate must be finite and > 0, got learning_rate=nan",
        ),
        ("eps", float("inf"), "eps must be finite and >= 0"),
    ],
)
def test_set_hyperparam_checks_concrete_values_as_injected_does(name, value, message):
    # `injected(adam, b2=-1)` was refused while `set_hyperparam(state, "b2", -1.0)` was taken:
    # the params were NaN after two updates.
    state = injected(optax.adam, learning_rate=0.1, b2=0.999).init(jnp.zeros(2))
    with pytest.raises(ValueError, match=message):
        set_hyperparam(state, name, value)
    traced = jax.jit(lambda s, v: set_hyperparam(s, "b2", v))(state, 0.5)  # a tracer passes
    assert float(hyperparams(traced)["b2"]) == 0.5


def test_scale_hyperparam_checks_a_concrete_result():
    from inject_rl.optim import scale_hyperparam

    state = injected(optax.adam, learning_rate=schedules.kl_target(1e-3), b1=0.9).init(jnp.zeros(2))
    with pytest.raises(ValueError, match=r"scale_hyperparam: b1 must be in \[0, 1\), got b1=1.7"):
        scale_hyperparam(state, "b1", 2.0)  # without complement=True
    with pytest.raises(ValueError, match="learning_rate must be finite"):
        scale_hyperparam(state, "learning_rate", float("inf"))
    scaled = scale_hyperparam(state, "b1", 2.0, complement=True)  # 1 - 2 * 0.1
    np.testing.assert_allclose(hyperparams(scaled)["b1"], 0.8, rtol=1e-6)


def test_under_multisteps_the_count_goes_on_the_call_that_applies_the_update():
    # MultiSteps updates its inner optimizer (and its schedules) on every k-th call only, with
    # that call's signals: `first_minibatch_only(count, first)` left every return uncounted.
    from inject_rl.optim import first_minibatch_only, forward_extra_args

    def best_after(on_call):
        tx = forward_extra_args(
            optax.MultiSteps(
                injected(optax.sgd, learning_rate=schedules.plateau(1e-3)), 4
            ).gradient_transformation()  # fmt: skip
        )
        state = tx.init(jnp.zeros(2))
        for rollout in range(3):
            for mb in range(4):
                count = first_minibatch_only(8.0, mb == on_call)
                ret = jnp.float32(10.0 * (rollout + 1))
                _, state = tx.update(jnp.ones(2), state, episode_return=ret, episode_count=count)
        return float(state.inner_opt_state.hyperparams_states["learning_rate"].best)

    assert best_after(on_call=0) == -np.inf  # never counted
    assert best_after(on_call=3) == 30.0  # each rollout's return, once
