"""Default bounds follow the initial value (issue 14 item 2, "honest defaults")."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl import schedules as S


def _run(sched, signals, n):
    state = sched.init()
    update = jax.jit(lambda s: sched.update(s, **signals))
    for _ in range(n):
        state = update(state)
    return float(sched(state))


def test_plateau_default_floor_is_init_over_1000():
    # The floor used to be 0: 50 halvings took a learning rate of 1e-3 to 2e-18.
    lr = S.plateau(1e-3, patience=1)
    assert _run(lr, {"episode_return": 1.0, "episode_count": 1}, 50) == pytest.approx(1e-6)


def test_plateau_default_cap_is_1000_times_init():
    b = S.plateau(1e-3, factor=2.0, patience=1)
    assert _run(b, {"episode_return": 1.0, "episode_count": 1}, 50) == pytest.approx(1.0)


@pytest.mark.parametrize("init", [3e-4, 1e-3, 0.5], ids=["3e-4", "1e-3", "0.5"])
def test_kl_target_default_bounds_are_relative(init):
    # The cap used to be 1e-2 whatever the initial value (and kl_target(0.5) was rejected).
    lr = S.kl_target(init)
    assert (lr.min_value, lr.max_value) == pytest.approx((init / 1000, init * 10))
    assert _run(lr, {"kl": 1.0}, 60) == pytest.approx(init / 1000, rel=1e-6)
    assert _run(lr, {"kl": 1e-4}, 60) == pytest.approx(init * 10, rel=1e-6)


def test_kl_target_defaults_at_ppo_learning_rate_are_the_old_ones():
    # agents/ppo.py builds kl_target(lr_init=1e-3, ...): its bounds must stay 1e-6 and 1e-2.
    lr = S.kl_target(1e-3)
    assert (lr.min_value, lr.max_value) == (1e-6, 1e-2)


def test_explicit_bounds_are_kept():
    lr = S.kl_target(3e-4, min_value=1e-6, max_value=1e-2)
    assert (lr.min_value, lr.max_value) == (1e-6, 1e-2)
    p = S.plateau(1e-3, min_value=0.0, max_value=np.inf)
    assert (p.min_value, p.max_value) == (0.0, np.inf)
    assert S.to_spec(S.parse(S.to_spec(S.kl_target(3e-4)))) == S.to_spec(S.kl_target(3e-4))


def test_default_bounds_need_a_non_negative_init():
    with pytest.raises(ValueError, match="init_value must be >= 0 for the default bounds"):
        S.plateau(-1.0, mode="min")
    p = S.plateau(-1.0, mode="min", min_value=-10.0, max_value=0.0)
    assert p.min_value == -10.0


def test_vmapped_initial_values_get_per_member_default_bounds():
    def floor(lr):
        sched = S.kl_target(lr)
        state = sched.init()
        for _ in range(40):
            state = sched.update(state, kl=1.0)
        return sched(state)

    inits = jnp.array([1e-4, 1e-3])
    np.testing.assert_allclose(jax.vmap(floor)(inits), inits / 1000, rtol=1e-6)


def test_spike_guard_back_off_is_floored():
    # A loss that stays NaN used to back the rate off to 0.5 ** 100 of its value.
    lr = S.spike_guard(1e-3)
    assert _run(lr, {"loss": np.nan}, 100) == pytest.approx(1e-6)
    off = S.spike_guard(1e-3, min_scale=0.0)  # asked for: no floor
    assert _run(off, {"loss": np.nan}, 100) < 1e-30
    with pytest.raises(ValueError, match="min_scale must be in"):
        S.spike_guard(1e-3, min_scale=2.0)


INFINITE = {
    "kl_target_init": (lambda: S.kl_target(np.inf), "init_value must be finite"),
    "kl_target_factor": (lambda: S.kl_target(1e-3, factor=np.inf), "factor must be finite"),
    "kl_target_target": (lambda: S.kl_target(1e-3, target=np.inf), "target must be finite"),
    "plateau_threshold": (lambda: S.plateau(1e-3, threshold=np.inf), "threshold must be finite"),
    "progress_start": (
        lambda: S.progress(np.inf, 1.0, low=0.0, high=1.0),
        "start_value must be finite",
    ),
    "warmup_init": (lambda: S.warmup(1e-3, 3, init_value=-np.inf), "init_value must be finite"),
    "spike_guard_ratio": (lambda: S.spike_guard(1e-3, ratio=np.inf), "ratio must be finite"),
    "bandit_exploration": (
        lambda: S.bandit([1e-3, 1e-2], exploration=np.inf),
        "exploration must be finite",
    ),
    "constant": (lambda: S.constant(np.inf), "value must be finite"),
    "huge_int": (lambda: S.constant(10**400), "too large for a float"),
}


@pytest.mark.parametrize("build, message", INFINITE.values(), ids=list(INFINITE))
def test_infinite_arguments_are_rejected(build, message):
    # They used to build schedules whose value was inf, or NaN before any signal.
    with pytest.raises(ValueError, match=message):
        build()


def test_bounds_may_be_infinite():
    lr = S.kl_target(1e-3, min_value=0.0, max_value=np.inf)
    assert lr.max_value == np.inf
    assert _run(lr, {"kl": 1e-6}, 3) == pytest.approx(1e-3 * 1.5**3)
    assert S.clip(S.constant(1e-3), min_value=-np.inf, max_value=np.inf).max_value == np.inf
