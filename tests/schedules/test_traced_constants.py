"""Numeric constants as 0-d arrays and tracers (issue 12 item 13): vmap over initial values."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules as S
from inject_rl.optim import hyperparams, injected

# Every schedule of the package, built with all its float constants derived from `x` (a float,
# a 0-d array or a tracer), so that vmapping over `x` maps over every constant at once.
BUILD = {
    "hypergradient": lambda x: S.hypergradient(x, beta=x * 0 + 0.1, signal="kl", min_value=x / 9),
    "bandit": lambda x: S.bandit([x, 3 * x, 10 * x], hold=1, exploration=x * 0 + 1.0),
    "clip": lambda x: S.clip(S.plateau(x, patience=1), 0.6 * x, 2 * x),
    "constant": lambda x: S.constant(x),
    "from_step_schedule": lambda x: S.from_step_schedule(optax.linear_schedule(x, x / 10, 4)),
    "kl_target": lambda x: S.kl_target(x, target=x * 0 + 0.01, factor=x * 0 + 1.5),
    "plateau": lambda x: S.plateau(x, patience=1, factor=x * 0 + 0.5, min_value=x / 100),
    "progress": lambda x: S.progress(x, x / 10, low=x * 0, high=x * 0 + 4.0, smoothing=0.0),
    "spike_guard": lambda x: S.spike_guard(x, ratio=x * 0 + 3.0, backoff=x * 0 + 0.5),
    "warmup": lambda x: S.warmup(S.kl_target(x), steps=2, init_value=x / 10),
}
SIGNALS = [
    {"kl": 0.05, "loss": 1.0, "episode_return": 1.0, "episode_count": 1},
    {"kl": 0.05, "loss": 1.0, "episode_return": 0.5, "episode_count": 1},
    {"kl": 0.001, "loss": 9.0, "episode_return": 3.0, "episode_count": 1},
    {"kl": 0.01, "loss": 1.0, "episode_return": 2.0, "episode_count": 1},
]
INITS = [1e-4, 3e-4, 1e-3]
names = pytest.mark.parametrize("name", sorted(BUILD))


def _values(name, x):
    """The schedule's value after init and after each update."""
    s = BUILD[name](x)
    state = s.init()
    out = [s(state)]
    for signals in SIGNALS:
        state = s.update(state, **signals)
        out.append(s(state, **signals))
    return jnp.stack(out)


def test_every_schedule_has_a_case():
    assert set(BUILD) == set(S.SCHEDULES)


@names
def test_jax_scalar_constants_behave_like_floats(name):
    got = _values(name, jnp.float32(3e-4))
    want = _values(name, float(jnp.float32(3e-4)))
    # Derived constants (3 * x) round in float32 rather than float64 before their cast.
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.dtype == jnp.float32


@pytest.mark.parametrize("array", [jnp.float32, np.float32], ids=["jax", "numpy"])
@pytest.mark.parametrize(
    "make",
    [S.constant, S.kl_target, S.plateau, lambda x: S.warmup(x, steps=2, init_value=x)],
    ids=["constant", "kl_target", "plateau", "warmup"],
)
def test_a_concrete_array_is_read_as_a_float(make, array):
    # A concrete value is stored as a float, so the repr (and spec) is the float one.
    value = array(3e-4)
    assert repr(make(value)) == repr(make(float(value)))


@names
def test_vmap_over_the_constants_gives_per_member_values(name):
    got = jax.vmap(lambda x: _values(name, x))(jnp.array(INITS, jnp.float32))
    want = jnp.stack([_values(name, float(jnp.float32(x))) for x in INITS])
    np.testing.assert_allclose(got, want, rtol=1e-6)


@names
def test_traced_constants_under_jit_keep_the_state_contract(name):
    s = BUILD[name](3e-4)
    state = jax.jit(lambda x: BUILD[name](x).init())(jnp.float32(3e-4))
    ref = s.init()
    assert jax.tree.structure(state) == jax.tree.structure(ref)
    assert [(x.shape, x.dtype) for x in jax.tree.leaves(state)] == [
        (x.shape, x.dtype) for x in jax.tree.leaves(ref)
    ]


def test_vmap_over_kl_target_initial_learning_rate_in_adam():
    # The purejaxrl pattern of issue 12 item 13: one program, one learning rate per member.
    def train(lr):
        opt = injected(optax.adam, learning_rate=S.kl_target(lr, target=0.01))
        params = jnp.zeros(3)
        state = opt.init(params)
        for kl in (0.05, 0.05, 0.001):  # too high twice (lr / 1.5 / 1.5), then too low
            _, state = opt.update(jnp.ones(3), state, params, kl=kl)
        # inject_hyperparams records the value each update used, i.e. before that update's
        # signal: after the third update it shows lr / 1.5**2.
        return hyperparams(state)["learning_rate"]

    lrs = jax.vmap(train)(jnp.array(INITS))
    np.testing.assert_allclose(lrs, np.array(INITS) / 1.5**2, rtol=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.kl_target(jnp.float32(-1.0)), "init_value must be >= 0"),
        (lambda: S.kl_target(np.float64(1.0), max_value=0.01), "init_value must be in"),
        (lambda: S.plateau(1.0, factor=jnp.float32(1.0)), "factor must be > 0 and != 1"),
        (lambda: S.bandit(jnp.array([1.0, jnp.inf])), "must be finite"),
        (lambda: S.spike_guard(jnp.float32(1e-3), backoff=jnp.float32(2.0)), "backoff"),
        (lambda: S.constant(jnp.float32(jnp.nan)), "value must be in"),
        (lambda: S.kl_target(jnp.array([1e-4, 3e-4])), "must be a scalar"),
        (lambda: S.bandit(jnp.ones((2, 2))), "values must be a sequence"),
    ],
    ids=["negative", "above_max", "factor_one", "inf_arm", "backoff", "nan", "vector", "matrix"],
)
def test_concrete_arrays_are_validated(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_numeric_arrays_are_rejected():
    with pytest.raises(TypeError, match="must be a real number"):
        S.kl_target(jnp.array(True))
