"""Tests for `inject_rl.optim.injected`."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules
from inject_rl.optim import SIGNAL_NAMES, hyperparams, injected

from ._schedules import Constant, Recording

SIGNALS = {"kl": 0.02, "loss": 1.5, "episode_return": 10.0, "episode_count": 3}


def _dtypes(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def _scan_adam(opt, steps=20):
    params = jnp.linspace(-1.0, 1.0, 8).astype(jnp.bfloat16)

    def step(carry, _):
        params, state = carry
        grads = 2 * params  # d/dp of sum(p**2)
        updates, state = opt.update(grads, state, params, **SIGNALS)
        return (optax.apply_updates(params, updates), state), None

    init = (params, opt.init(params))
    (params, state), _ = jax.lax.scan(step, init, None, length=steps)
    return init, params, state


def test_returns_extra_args_transform_with_float32_hyperparams():
    opt = injected(optax.adam, learning_rate=1e-3)
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    state = opt.init(jnp.ones(2, jnp.bfloat16))
    assert {v.dtype for v in hyperparams(state).values()} == {jnp.dtype(jnp.float32)}


def test_bf16_adam_is_a_scan_carry():
    (params0, state0), params, state = _scan_adam(injected(optax.adam, learning_rate=0.05))
    assert jax.tree.structure(state) == jax.tree.structure(state0)
    assert _dtypes(state) == _dtypes(state0)
    assert params.dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(params)))
    assert float(jnp.sum(params.astype(jnp.float32) ** 2)) < float(
        jnp.sum(params0.astype(jnp.float32) ** 2)
    )


def test_plain_inject_hyperparams_breaks_bf16_scan():
    # With float32 betas optax's Adam turns its bf16 `mu` into float32 after one update.
    opt = optax.inject_hyperparams(optax.adam, hyperparam_dtype=jnp.float32)(learning_rate=0.05)
    with pytest.raises(TypeError, match="carry"):
        _scan_adam(opt)


def test_updates_have_grads_dtype():
    opt = injected(optax.adam, learning_rate=0.1)
    params = jnp.ones(3, jnp.bfloat16)
    state = opt.init(params)
    updates, new_state = opt.update(jnp.ones(3, jnp.bfloat16), state, params)
    assert updates.dtype == jnp.bfloat16
    assert _dtypes(new_state) == _dtypes(state)


def test_bf16_default_hyperparam_dtype_nan_hazard():
    # optax#1414-style hazard: bf16 stores b2=0.999 as 1.0, so Adam's bias correction is 0/0.
    params, grads = jnp.ones(3, jnp.bfloat16), jnp.ones(3, jnp.bfloat16)
    plain = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    state = plain.init(params)
    assert float(state.hyperparams["b2"]) == 1.0
    updates, _ = plain.update(grads, state, params)
    assert bool(jnp.all(jnp.isnan(updates)))

    ours = injected(optax.adam, learning_rate=0.1)
    updates, _ = ours.update(grads, ours.init(params), params)
    assert bool(jnp.all(jnp.isfinite(updates)))
    np.testing.assert_allclose(np.float32(updates), -0.1, rtol=1e-2)


def _strict_scale(factor):
    """A transform that, like optax's line searches, rejects extra_args it does not take."""

    def update_fn(updates, state, params=None, *, value=1.0, **extra_args):
        if extra_args:
            raise TypeError(f"unexpected extra_args {sorted(extra_args)}")
        return jax.tree.map(lambda u: u * factor * value, updates), state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


def test_signals_do_not_reach_the_inner_transform():
    grads = jnp.array([1.0, 2.0])
    plain = optax.inject_hyperparams(_strict_scale)(factor=2.0)
    with pytest.raises(TypeError, match="unexpected extra_args"):
        plain.update(grads, plain.init(grads), kl=0.1)

    opt = injected(_strict_scale, factor=2.0)
    assert "factor" in inspect.signature(_strict_scale).parameters
    # Signals are dropped; other keys (here `value`) still reach the transform.
    updates, _ = opt.update(grads, opt.init(grads), value=3.0, **SIGNALS)
    np.testing.assert_allclose(updates, 6.0 * grads)


def test_all_signal_names_are_dropped():
    opt = injected(_strict_scale, factor=1.0)
    grads = jnp.ones(2)
    opt.update(grads, opt.init(grads), **dict.fromkeys(SIGNAL_NAMES, 1.0))


def _sgd_with_linesearch(learning_rate):
    return optax.chain(optax.sgd(learning_rate), optax.scale_by_backtracking_linesearch(10))


def test_optax_linesearch_works_with_signals():
    def value_fn(params):
        return jnp.sum(params**2)

    params = jnp.array([1.0, -2.0])
    value, grad = jax.value_and_grad(value_fn)(params)
    extra = {"value": value, "grad": grad, "value_fn": value_fn, "kl": 0.1}

    plain = optax.inject_hyperparams(_sgd_with_linesearch)(learning_rate=1.0)
    with pytest.raises(TypeError, match="not consumed by `value_fn`"):
        plain.update(grad, plain.init(params), params, **extra)

    opt = injected(_sgd_with_linesearch, learning_rate=1.0)
    updates, _ = opt.update(grad, opt.init(params), params, **extra)
    assert float(value_fn(params + updates)) < float(value)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["nojit", "jit"])
def test_schedules_receive_every_extra_arg(transform):
    opt = injected(optax.sgd, learning_rate=Recording(0.5, key="kl"), clip=Recording(9.0, "loss"))
    params = jnp.ones(2)
    state = opt.init(params)
    updates, state = transform(opt.update)(jnp.ones(2), state, params, **SIGNALS)
    np.testing.assert_allclose(updates, -0.5 * np.ones(2))
    clip_state, sgd_state = state
    np.testing.assert_allclose(sgd_state.hyperparams_states["learning_rate"].last, 0.02)
    np.testing.assert_allclose(clip_state.hyperparams_states["max_norm"].last, 1.5)
    assert int(sgd_state.hyperparams_states["learning_rate"].calls) == 1


def test_step_schedule_hyperparam():
    opt = injected(optax.sgd, learning_rate=optax.linear_schedule(1.0, 0.0, 4))
    params = jnp.zeros(1)
    state = opt.init(params)
    steps = []
    for _ in range(3):
        updates, state = opt.update(jnp.ones(1), state, params, kl=0.0)
        steps.append(float(updates[0]))
    np.testing.assert_allclose(steps, [-1.0, -0.75, -0.5])


@pytest.mark.parametrize(
    "clip",
    [0.5, Constant(0.5), lambda count: 0.5],
    ids=["float", "stateful_schedule", "step_schedule"],
)
def test_clip_by_global_norm(clip):
    opt = injected(optax.sgd, learning_rate=1.0, clip=clip)
    grads = jnp.array([3.0, 4.0])  # global norm 5
    updates, state = opt.update(grads, opt.init(grads), grads, kl=0.0)
    np.testing.assert_allclose(optax.tree.norm(updates), 0.5, rtol=1e-6)
    if not isinstance(clip, float):
        np.testing.assert_allclose(hyperparams(state)["max_norm"], 0.5)
    # Small gradients pass unchanged.
    small, _ = opt.update(grads / 100, opt.init(grads), grads, kl=0.0)
    np.testing.assert_allclose(small, -grads / 100, rtol=1e-6)


@pytest.mark.parametrize(
    "clip",
    [0.5, Constant(0.5), lambda count: 0.5],
    ids=["float", "stateful_schedule", "step_schedule"],
)
def test_clip_keeps_bf16_updates_bf16(clip):
    # An injected max_norm is float32: optax's clip mixed it with bf16 updates in a `lax.select`
    # and raised a TypeError; a float clip always worked.
    params = jnp.zeros(2, jnp.bfloat16)
    opt = injected(optax.sgd, learning_rate=1.0, clip=clip)
    updates, _ = opt.update(jnp.array([3.0, 4.0], jnp.bfloat16), opt.init(params), params)
    assert updates.dtype == jnp.bfloat16
    np.testing.assert_allclose(updates.astype(np.float32), [-0.3, -0.4], rtol=1e-2)


def test_an_injected_clip_is_optax_clip_in_float32():
    grads = {"a": jax.random.normal(jax.random.key(0), (5,)) * 10, "b": jnp.arange(3.0)}
    for clip in (0.7, 1e3):  # clipped, and passed through
        want = optax.chain(optax.clip_by_global_norm(clip), optax.sgd(1.0))
        opt = injected(optax.sgd, learning_rate=1.0, clip=Constant(clip))
        got, _ = opt.update(grads, opt.init(grads), grads, kl=0.0)
        ref, _ = want.update(grads, want.init(grads), grads)
        for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            np.testing.assert_array_equal(x, y)


def test_a_signal_of_the_users_own_name_is_hidden_from_the_inner_transform():
    # `signal="approx_kl"` used to reach optax's line search, which rejects unknown keys.
    def value_fn(x):
        return jnp.sum((x - 1.0) ** 2)

    lr = schedules.kl_target(1.0, signal="approx_kl")
    opt = injected(optax.lbfgs, learning_rate=lr)
    x = jnp.zeros(3)
    state = opt.init(x)
    for _ in range(2):  # a KL far above the target: the second update's rate is 1 / 1.5
        value, grad = jax.value_and_grad(value_fn)(x)
        updates, state = opt.update(
            grad, state, x, value=value, grad=grad, value_fn=value_fn, approx_kl=1.0
        )
        assert float(value_fn(x + updates)) < float(value)
        x = x + updates
    assert float(hyperparams(state)["learning_rate"]) == pytest.approx(1 / 1.5)


@pytest.mark.parametrize("clip", [0.0, -1.0, float("nan")], ids=["zero", "negative", "nan"])
def test_clip_must_be_positive(clip):
    with pytest.raises(ValueError, match=f"clip={clip}"):
        injected(optax.adam, learning_rate=1e-3, clip=clip)


def test_clip_must_be_a_number_or_schedule():
    with pytest.raises(TypeError, match="clip"):
        injected(optax.adam, learning_rate=1e-3, clip="0.5")


def test_unknown_hyperparameter_names_factory_parameters():
    with pytest.raises(ValueError, match="adam has no parameter 'lr'.*learning_rate, b1, b2"):
        injected(optax.adam, lr=1e-3)


def _var_keyword(**kwargs):
    return optax.sgd(**kwargs)


def _var_positional(*transforms):
    return optax.chain(*transforms)


@pytest.mark.parametrize(
    ("factory", "hyperparams_"),
    [(_var_keyword, {"learning_rate": 0.1}), (_var_positional, {})],
    ids=["var_keyword", "var_positional"],
)
def test_factory_with_variadic_parameters_is_rejected(factory, hyperparams_):
    # inject_hyperparams binds by signature and would call `factory(kwargs={...})`.
    with pytest.raises(ValueError, match=f"{factory.__name__}.*variadic"):
        injected(factory, **hyperparams_)


def test_hyperparam_dtype_none_keeps_optax_default():
    opt = injected(optax.sgd, learning_rate=0.1, hyperparam_dtype=None)
    state = opt.init(jnp.zeros(1, jnp.bfloat16))
    assert hyperparams(state)["learning_rate"].dtype == jnp.bfloat16
