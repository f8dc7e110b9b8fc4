"""`optim.packed`: the same updates as the optimizer it wraps, fewer leaves, readable by name."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules
from inject_rl.optim import (
    PackedState,
    bounds,
    carried,
    current,
    hyperparams,
    injected,
    packed,
    scale_hyperparam,
    set_hyperparam,
    update_alignment,
)
from inject_rl.runs import Checkpointer

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}


def optimizer():
    return optax.chain(
        injected(
            optax.adam,
            learning_rate=schedules.kl_target(1e-2, every=2),
            b1=schedules.plateau(0.9, factor=1.05, max_value=0.99, every=3),
        ),
        carried(ent_coef=0.01),
    )


def signals(i):
    # KL alternating around its target (the rate moves both ways), a NaN the schedules skip.
    kl = jnp.where(i % 5 == 4, jnp.nan, jnp.where(i % 4 < 2, 0.05, 0.001))
    return {
        "kl": kl.astype(jnp.float32),
        "episode_return": jnp.float32(i % 7),
        "episode_count": jnp.float32(2.0),
    }


def train(opt, state, steps=25):
    @jax.jit
    def step(params, state, i):
        grads = jax.tree.map(lambda p: jnp.sin(p * (i + 1.0)), params)
        updates, state = opt.update(grads, state, params, **signals(i))
        return optax.apply_updates(params, updates), state

    params = PARAMS
    for i in range(steps):
        params, state = step(params, state, jnp.int32(i))
    return params, state


def bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def test_the_updates_and_the_state_are_those_of_the_optimizer_it_packs_bitwise():
    opt = optimizer()
    params, state = train(opt, opt.init(PARAMS))
    p_params, p_state = train(packed(opt), packed(opt).init(PARAMS))
    assert isinstance(p_state, PackedState)
    assert bits(p_params) == bits(params)
    assert bits(p_state.unpacked()) == bits(state)
    assert jax.tree.structure(p_state.unpacked()) == jax.tree.structure(state)
    # The schedules moved: the comparison covers adaptation, not a constant.
    assert float(hyperparams(state)["learning_rate"]) != 1e-2


def test_a_plain_transformation_that_takes_extra_args_gets_the_signals():
    # `MultiSteps(...).gradient_transformation()` is a plain GradientTransformation whose update
    # has **kwargs: optax.with_extra_args_support dropped the signals, and the schedule inside
    # raised MissingSignalError.
    inner = injected(optax.sgd, learning_rate=schedules.kl_target(1.0))
    plain = optax.MultiSteps(inner, every_k_schedule=1).gradient_transformation()
    assert not isinstance(plain, optax.GradientTransformationExtraArgs)
    for opt in (packed(plain), update_alignment(plain)):
        state = opt.init(jnp.zeros(2))
        for _ in range(2):  # KL far above target: the second update's rate is 1 / 1.5
            _, state = opt.update(jnp.ones(2), state, jnp.zeros(2), kl=jnp.float32(1.0))
        assert float(hyperparams(state)["learning_rate"]) == pytest.approx(1 / 1.5)


def test_every_scalar_goes_into_one_vector_per_width():
    opt = optimizer()
    state = opt.init(PARAMS)
    arrays = [x for x in jax.tree.leaves(state) if jnp.ndim(x) > 0]
    scalars = [x for x in jax.tree.leaves(state) if jnp.ndim(x) == 0]
    p_state = packed(opt).init(PARAMS)
    assert len(scalars) > 20
    assert len(jax.tree.leaves(p_state)) == len(arrays) + 1  # all scalars are 32-bit
    assert p_state.vectors["int32"].shape == (len(scalars),)
    # Plain Adam's state has as many leaves: a jitted call dispatches as many.
    assert len(jax.tree.leaves(p_state)) == len(jax.tree.leaves(optax.adam(1e-3).init(PARAMS)))


def test_hyperparams_bounds_and_current_read_through_it():
    opt = optimizer()
    _, state = train(opt, opt.init(PARAMS), steps=9)
    _, p_state = train(packed(opt), packed(opt).init(PARAMS), steps=9)
    assert bits(hyperparams(p_state)) == bits(hyperparams(state))
    assert hyperparams(p_state).keys() == hyperparams(state).keys()
    assert bounds(p_state) == bounds(state)
    assert float(current(p_state, "ent_coef")) == pytest.approx(0.01)
    assert float(jax.jit(lambda s: current(s, "ent_coef"))(p_state)) == pytest.approx(0.01)


def test_set_and_scale_return_a_packed_state_that_the_next_update_uses():
    opt = packed(optimizer())
    state = opt.init(PARAMS)
    before = bits(state)
    edited = set_hyperparam(state, "ent_coef", 0.5)
    edited = scale_hyperparam(edited, "learning_rate", 2.0)
    edited = scale_hyperparam(edited, "b1", 0.5, complement=True)
    assert bits(state) == before  # the caller's state is untouched
    assert isinstance(edited, PackedState)
    assert jax.tree.structure(edited) == jax.tree.structure(state)  # no recompile
    values = hyperparams(edited)
    assert float(values["ent_coef"]) == pytest.approx(0.5)
    assert float(values["learning_rate"]) == pytest.approx(2e-2)
    assert float(values["b1"]) == pytest.approx(0.95)
    # The bounds moved with the scaled rate, as for an unpacked state.
    low, high = bounds(state)["learning_rate"]
    assert bounds(edited)["learning_rate"] == pytest.approx((2 * low, 2 * high), rel=1e-6)
    # The next update steps with the scaled rate: Adam's first step is lr * sign(g).
    updates, _ = jax.jit(opt.update)(
        jax.tree.map(jnp.ones_like, PARAMS), edited, PARAMS, **signals(0)
    )
    np.testing.assert_allclose(updates["b"], -2e-2, rtol=1e-5)
    # Under jit with a traced value too.
    traced = jax.jit(lambda s, v: set_hyperparam(s, "ent_coef", v))(state, jnp.float32(0.25))
    assert float(hyperparams(traced)["ent_coef"]) == 0.25


def test_a_population_axis_is_read_and_scaled_member_by_member():
    opt = packed(optimizer())
    members = jax.jit(jax.vmap(lambda _: opt.init(PARAMS)))(jnp.arange(3))
    assert members.vectors["int32"].shape[0] == 3
    lr = hyperparams(members)["learning_rate"]
    np.testing.assert_allclose(lr, [1e-2] * 3)
    scaled = scale_hyperparam(members, "learning_rate", jnp.array([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(hyperparams(scaled)["learning_rate"], [5e-3, 1e-2, 2e-2])
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    updates, _ = jax.jit(jax.vmap(lambda s: opt.update(grads, s, PARAMS, **signals(0))))(scaled)
    np.testing.assert_allclose(updates["b"][:, 0], [-5e-3, -1e-2, -2e-2], rtol=1e-5)


def test_an_unpacked_state_is_refused_by_name():
    opt = optimizer()
    with pytest.raises(TypeError, match="packed: update got a tuple, not the PackedState"):
        packed(opt).update(PARAMS, opt.init(PARAMS), PARAMS, **signals(0))


def test_a_checkpoint_restores_it_bitwise(tmp_path):
    opt = packed(optimizer())
    _, state = train(opt, opt.init(PARAMS), steps=7)
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(7, state, {})
    restored, _ = ckpt.restore(7, opt.init(PARAMS))
    assert isinstance(restored, PackedState)
    assert bits(restored) == bits(state)
    assert jax.tree.structure(restored) == jax.tree.structure(state)


def test_packed_parts_inside_a_chain_are_read_and_edited_in_place():
    inner = injected(optax.sgd, learning_rate=0.1)
    opt = optax.chain(packed(inner), packed(carried(ent_coef=0.01, clip_eps=0.2)))
    state = opt.init(PARAMS)
    assert all(isinstance(part, PackedState) for part in state)
    assert sorted(hyperparams(state)) == ["clip_eps", "ent_coef", "learning_rate"]
    edited = set_hyperparam(state, "clip_eps", 0.1)
    assert jax.tree.structure(edited) == jax.tree.structure(state)
    assert float(hyperparams(edited)["clip_eps"]) == pytest.approx(0.1)
    assert float(hyperparams(edited)["learning_rate"]) == pytest.approx(0.1)
    updates, _ = opt.update(jax.tree.map(jnp.ones_like, PARAMS), edited, PARAMS)
    np.testing.assert_allclose(updates["b"], -0.1, rtol=1e-6)


def test_a_packed_state_inside_a_packed_state_is_read_and_edited():
    inner = injected(optax.sgd, learning_rate=schedules.kl_target(0.1))
    opt = packed(optax.chain(packed(inner), carried(ent_coef=0.01)))
    state = opt.init(PARAMS)
    assert sorted(hyperparams(state)) == ["ent_coef", "learning_rate"]
    assert bounds(state)["learning_rate"] == pytest.approx((1e-4, 1.0), rel=1e-6)
    edited = scale_hyperparam(set_hyperparam(state, "ent_coef", 0.5), "learning_rate", 2.0)
    assert jax.tree.structure(edited) == jax.tree.structure(state)
    assert float(hyperparams(edited)["learning_rate"]) == pytest.approx(0.2)
    assert float(hyperparams(edited)["ent_coef"]) == pytest.approx(0.5)


def test_a_checkpoint_of_another_optimizers_state_is_refused(tmp_path):
    # Same number of scalars, other names: read slot by slot, the values would swap silently.
    saved = packed(optax.chain(optax.adam(1e-3), carried(ent_coef=0.01, clip_eps=0.2)))
    other = packed(optax.chain(optax.adam(1e-3), carried(ent_coef=0.01, vf_coef=0.5)))
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, saved.init(PARAMS), {})
    with pytest.raises(ValueError, match="different state structure"):
        ckpt.restore(1, other.init(PARAMS))


def test_arithmetic_over_the_bits_is_refused_when_read():
    opt = packed(optimizer())
    members = jax.jit(jax.vmap(lambda _: opt.init(PARAMS)))(jnp.arange(2))
    mean = jax.tree.map(lambda x: jnp.mean(x, 0), members)  # int32 bits -> float32 nonsense
    with pytest.raises(TypeError, match="a packed vector must be int32, got float32"):
        hyperparams(mean)


def test_an_abstract_state_reads_as_shapes():
    opt = packed(optimizer())
    shapes = jax.eval_shape(opt.init, PARAMS)
    lr = hyperparams(shapes)["learning_rate"]
    assert isinstance(lr, jax.ShapeDtypeStruct) and lr.shape == () and lr.dtype == jnp.float32


def test_bad_uses_get_errors_that_name_them():
    with pytest.raises(TypeError, match="packed: expected an optax.GradientTransformation"):
        packed(lambda x: x)
    state = packed(optimizer()).init(PARAMS)
    with pytest.raises(ValueError, match=r"cannot be packed again: a scalar leaf .* float32\[3\]"):
        scale_hyperparam(state, "ent_coef", jnp.array([1.0, 2.0, 3.0]))

    def to_float(count):
        return optax.GradientTransformation(
            lambda p: optax.ScaleByScheduleState(count=jnp.int32(0)),
            lambda u, s, p=None: (u, optax.ScaleByScheduleState(count=jnp.float32(1))),
        )

    opt = packed(optax.chain(to_float(0), carried(ent_coef=0.01)))
    with pytest.raises(TypeError, match=r"packed: the wrapped optimizer's update returned a "
                       r"scalar leaf \(\[0\]\.count\) went from int32\[\] to float32"):  # fmt: skip
        opt.update(PARAMS, opt.init(PARAMS), PARAMS)
