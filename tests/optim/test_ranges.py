"""Range checks of injected optimizers' hyperparameters (issue 12 item 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules as S
from inject_rl.optim import hyperparams, injected

from ._schedules import Constant

BAD = {
    "adam_b2_negative": (optax.adam, {"b2": -1}, "adam: b2 must be in [0, 1), got b2=-1.0"),
    "adam_b1_above_one": (optax.adam, {"b1": 1.5}, "adam: b1 must be in [0, 1), got b1=1.5"),
    "adam_b1_one": (optax.adam, {"b1": 1.0}, "b1 must be in [0, 1), got b1=1.0"),
    "adam_eps_negative": (optax.adam, {"eps": -1}, "eps must be finite and >= 0, got eps=-1.0"),
    "adam_eps_root": (optax.adam, {"eps_root": -1}, "eps_root must be finite and >= 0"),
    "adam_eps_inf": (optax.adam, {"eps": np.inf}, "eps must be finite and >= 0, got eps=inf"),
    "rmsprop_decay": (optax.rmsprop, {"decay": 7}, "rmsprop: decay must be in [0, 1], got"),
    "sgd_momentum_high": (optax.sgd, {"momentum": 1.5}, "sgd: momentum must be in [0, 1)"),
    "sgd_momentum_negative": (optax.sgd, {"momentum": -1}, "momentum=-1.0"),
    "rmsprop_momentum": (optax.rmsprop, {"momentum": 2.0}, "rmsprop: momentum must be in"),
    "adamw_weight_decay": (optax.adamw, {"weight_decay": -5}, "adamw: weight_decay must be"),
    "other_nan": (optax.rmsprop, {"initial_scale": np.nan}, "initial_scale must be finite"),
    "lr_zero": (optax.adam, {"learning_rate": 0.0}, "learning_rate must be finite and > 0"),
    "lr_negative": (optax.sgd, {"learning_rate": -0.1}, "learning_rate=-0.1"),
    "lr_inf": (optax.adam, {"learning_rate": np.inf}, "learning_rate must be finite"),
    "lr_nan": (optax.adam, {"learning_rate": np.nan}, "learning_rate=nan"),
    "jax_scalar": (optax.adam, {"b2": jnp.float32(2.0)}, "got b2=2.0"),
    "stateful_schedule": (optax.adam, {"b2": S.plateau(1.5)}, "initial value of plateau(1.5"),
    "user_schedule": (optax.adam, {"b1": Constant(-0.5)}, "b1 must be in [0, 1), got b1=-0.5"),
    "step_schedule": (
        optax.adam,
        {"learning_rate": optax.linear_schedule(-1.0, 1e-3, 10)},
        "learning_rate must be finite and >= 0, got learning_rate=-1.0",
    ),
}


@pytest.mark.parametrize("factory, hps, message", BAD.values(), ids=BAD.keys())
def test_out_of_range_hyperparameters_raise_one_line(factory, hps, message):
    hps = {"learning_rate": 1e-3} | hps
    with pytest.raises(ValueError) as err:
        injected(factory, **hps)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


GOOD = {
    "adam_edges": (optax.adam, {"b1": 0.0, "b2": 0.0, "eps": 0.0, "eps_root": 0.0}),
    "rmsprop_decay_one": (optax.rmsprop, {"decay": 1.0, "momentum": 0.0}),
    "sgd_momentum_none": (optax.sgd, {"momentum": None}),
    "sgd_momentum": (optax.sgd, {"momentum": 0.9}),
    "adamw_no_decay": (optax.adamw, {"weight_decay": 0.0}),
    "warmup_from_zero": (optax.adam, {"learning_rate": S.warmup(S.kl_target(1e-3), steps=5)}),
    "b1_schedule": (optax.adam, {"b1": S.plateau(0.9, factor=1.05, max_value=0.99)}),
    "user_schedule": (optax.adam, {"learning_rate": Constant(3e-4)}),
}


@pytest.mark.parametrize("factory, hps", GOOD.values(), ids=GOOD.keys())
def test_in_range_hyperparameters_build_and_update(factory, hps):
    opt = injected(factory, **({"learning_rate": 1e-3} | hps))
    params = jnp.ones(3)
    updates, _ = opt.update(jnp.ones(3), opt.init(params), params, kl=0.01, episode_return=1.0)
    assert bool(jnp.all(jnp.isfinite(updates)))


def test_b2_negative_trained_to_nan_before_the_check():
    # The hazard the check closes: optax accepts b2=-1 and the params turn NaN.
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b2=-1.0)
    params = jnp.ones(3)
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update(jnp.full(3, 0.5), state, params)
        params = optax.apply_updates(params, updates)
    assert bool(jnp.all(jnp.isnan(params)))


def test_traced_hyperparameters_are_not_checked():
    # Under vmap a value cannot be read: building must not fail (nor concretize it).
    def lr_used(b1):
        opt = injected(optax.adam, learning_rate=S.kl_target(b1 * 0 + 1e-3), b1=b1)
        return hyperparams(opt.init(jnp.ones(2)))["b1"]

    np.testing.assert_allclose(jax.vmap(lr_used)(jnp.array([0.5, 0.9])), [0.5, 0.9])


def test_a_callable_that_is_not_a_schedule_is_not_read():
    # adamw's `mask` may be a function of the params; reading it as a schedule of the count
    # fails, and the check leaves it to optax.
    def mask(params):
        return jax.tree.map(lambda p: p.ndim > 1, params)

    opt = injected(optax.adamw, learning_rate=1e-3, mask=mask)
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    opt.update(params, opt.init(params), params)


REACHABLE = {
    "plateau_up_default_cap": (S.plateau(0.9, factor=1.05, patience=1), "can reach b1=900.0"),
    "progress_end": (S.progress(0.9, 1.5, low=0.0, high=1.0), "can reach b1=1.5"),
    "kl_target_default_cap": (S.kl_target(0.9, signal="loss"), "can reach b1=9.0"),
    "bandit_arm": (S.bandit([0.9, 1.0]), "can reach b1=1.0"),
    "warmup_of_bad": (S.warmup(S.kl_target(0.9, signal="loss"), 5), "can reach b1=9.0"),
}


@pytest.mark.parametrize("b1, message", REACHABLE.values(), ids=list(REACHABLE))
def test_a_schedule_whose_bounds_leave_the_range_is_refused(b1, message):
    # Each was accepted by its initial value alone, and took b1 to 5.75, 1.5, 9.0 in 40 updates.
    with pytest.raises(ValueError, match=f"adam: b1 must be in \\[0, 1\\), but .*{message}"):
        injected(optax.adam, learning_rate=1e-3, b1=b1)


@pytest.mark.parametrize(
    "b1",
    [
        S.plateau(0.9, factor=1.05, max_value=0.99),
        S.plateau(0.9),  # factor 0.5: only lowers b1, whatever its cap
        S.kl_target(0.9, signal="loss", max_value=0.99),
        S.clip(S.plateau(0.9, factor=1.05), min_value=0.0, max_value=0.99),
        S.spike_guard(0.9, signal="kl"),
        S.warmup(0.9, 5),
        optax.linear_schedule(0.9, 0.95, 10),
    ],
    ids=["bounded", "plateau_down", "kl_bounded", "clipped", "spike_guard", "warmup", "step"],
)
def test_schedules_within_the_range_are_accepted(b1):
    opt = injected(optax.adam, learning_rate=1e-3, b1=b1)
    params = jnp.zeros(2)
    signals = {"loss": 1.0, "kl": 0.01, "episode_return": 1.0, "episode_count": 1}
    opt.update(jnp.ones(2), opt.init(params), params, **signals)
