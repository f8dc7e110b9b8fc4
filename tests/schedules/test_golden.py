"""Each schedule's rule on hand-computed sequences."""

import math

import jax
import numpy as np
import optax
import pytest

from inject_rl import schedules as S


def trace(sched, key, values, **extra):
    """Value after each update, for a sequence of signal values."""
    state, out = sched.init(), []
    update = jax.jit(lambda s, x: sched.update(s, **{key: x}, **extra))
    for v in values:
        state = update(state, np.float32(v))
        out.append(float(sched(state)))
    return out


def test_plateau_max_halves_after_patience_then_cooldown():
    s = S.plateau(1.0, patience=2, cooldown=1, factor=0.5)
    # best 1; 1 (no gain), 0.5 (no gain) -> halve; 0.1 in cooldown; 0.1, 0.1 -> halve again.
    got = trace(s, "episode_return", [1, 1, 0.5, 0.1, 0.1, 0.1, 5, 5], episode_count=1)
    assert got == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_plateau_threshold_is_relative_to_best():
    s = S.plateau(1.0, patience=1, threshold=0.1)
    # best 100; 109 is not > 110 -> halve; 111 improves; 200 improves.
    assert trace(s, "episode_return", [100, 109, 111, 200], episode_count=3) == [1, 0.5, 0.5, 0.5]


def test_plateau_negative_best_threshold():
    s = S.plateau(1.0, patience=1, threshold=0.1)
    # best -100; -95 is not > -90 -> halve; -80 improves.
    assert trace(s, "episode_return", [-100, -95, -80], episode_count=1) == [1, 0.5, 0.5]


def test_plateau_min_mode_grows_and_clips():
    s = S.plateau(0.9, signal="loss", mode="min", factor=1.05, patience=1, max_value=0.99)
    got = trace(s, "loss", [1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(got, [0.9, 0.9, 0.945, 0.99, 0.99, 0.99], rtol=1e-6)


def test_plateau_min_value_floor():
    s = S.plateau(1.0, patience=1, factor=0.1, min_value=0.05)
    np.testing.assert_allclose(
        trace(s, "episode_return", [1, 1, 1, 1], episode_count=1), [1, 0.1, 0.05, 0.05], rtol=1e-6
    )


def test_kl_target_rule_and_clipping():
    s = S.kl_target(1e-3, target=0.01, max_value=2e-3, min_value=5e-4)
    got = trace(s, "kl", [0.05, 0.01, 0.0, 0.001, 0.001, 0.001, 0.03, 0.03, 0.03, 0.03])
    want = [1e-3 / 1.5, 1e-3 / 1.5, 1e-3 / 1.5, 1e-3, 1.5e-3, 2e-3]
    want += [2e-3 / 1.5, 2e-3 / 1.5**2, 2e-3 / 1.5**3, 5e-4]  # the last is clipped
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_kl_target_every_acts_on_window_mean():
    s = S.kl_target(1e-3, every=2)
    # Window 1: (0.05 + 0.001) / 2 = 0.0255 > 0.02 -> lr / 1.5. The NaN is not counted.
    # Window 2: (0.001 + 0.001) / 2 < 0.005 -> lr * 1.5.
    got = trace(s, "kl", [0.05, float("nan"), 0.001, 0.001, 0.001])
    np.testing.assert_allclose(got, [1e-3, 1e-3, 1e-3 / 1.5, 1e-3 / 1.5, 1e-3], rtol=1e-5)


def test_progress_linear_with_smoothing():
    s = S.progress(1.0, 0.0, low=0.0, high=100.0, smoothing=0.5)
    # Debiased EMA: 50; then (0.5*50*0.5 + 0.5*100)/(0.75) -> 83.33...
    got = trace(s, "episode_return", [50, 100], episode_count=1)
    np.testing.assert_allclose(got, [0.5, 1 - 250 / 3 / 100], rtol=1e-5)


def test_progress_reversed_range_and_clamp():
    s = S.progress(0.9, 0.99, signal="loss", low=1.0, high=0.0, smoothing=0.0)
    np.testing.assert_allclose(trace(s, "loss", [2.0, 0.5, -3.0]), [0.9, 0.945, 0.99], rtol=1e-6)


def test_progress_start_value_before_any_signal():
    s = S.progress(3.0, 1.0, low=0.0, high=1.0)
    assert float(s(s.init())) == 3.0
    assert trace(s, "episode_return", [5.0], episode_count=0) == [3.0]


def test_bandit_tries_each_arm_then_exploits():
    s = S.bandit([1.0, 2.0, 3.0], hold=2, exploration=0.0, window=10)
    # Arm 0 for 2 updates (score 1), arm 1 (score 5), arm 2 (score 3), then best = arm 1.
    rewards = [1, 1, 5, 5, 3, 3, 5, 5]
    assert trace(s, "episode_return", rewards, episode_count=1) == [1, 2, 2, 3, 3, 2, 2, 2]


def test_bandit_min_mode_and_window_forgets():
    s = S.bandit([1.0, 2.0], hold=1, exploration=0.0, window=2, mode="min", signal="loss")
    # losses: arm0 -> 5, arm1 -> 1: pick arm1 (lower); arm1 gets 9; window holds (1:1, 1:9)...
    got = trace(s, "loss", [5, 1, 9, 9])
    assert got[:2] == [2, 2]
    # After (arm1: 1), (arm1: 9) only arm 1 is in the window -> arm 0 untried again -> arm 0.
    assert got[2] == 1


def test_spike_guard_backoff_and_recovery():
    s = S.spike_guard(1.0, ratio=2.0, backoff=0.5, recovery=2, smoothing=0.0)
    got = trace(s, "loss", [1, 1, 3, 1, 1, 1])
    np.testing.assert_allclose(got, [1, 1, 0.5, 0.5 * math.sqrt(2), 1, 1], rtol=1e-6)


def test_spike_guard_recovers_exactly_in_recovery_updates():
    s = S.spike_guard(1.0, ratio=2.0, backoff=0.5, recovery=2, smoothing=0.0)
    got = trace(s, "loss", [1, 1, 3, 1, 1])
    assert got[-1] == 1.0  # not 0.99999994: one back-off is undone in `recovery` updates


@pytest.mark.parametrize(
    "first, signal",
    [(0.0, "kl"), (-0.02, "loss"), (0.0, "loss")],
    ids=["kl_zero_first", "loss_negative_first", "loss_zero_first"],
)
def test_spike_guard_is_not_stuck_by_an_ema_of_zero(first, signal):
    # PPO's KL on its first minibatch is 0: the EMA started at 0, the limit `ratio x EMA` was 0,
    # every later positive value was a spike entering the EMA capped at 0, and the value sat at
    # min_scale for good (1e-6 of 1e-3 after 300 steady updates).
    s = S.spike_guard(1e-3, signal=signal)
    values = [first] + [0.05 + 0.01 * ((i * 7) % 5) for i in range(300)]
    got = trace(s, signal, values)
    assert got[-1] == pytest.approx(1e-3)
    assert min(got) == pytest.approx(1e-3)  # steady values are never spikes


def test_spike_guard_judges_spikes_after_the_emas_time_constant():
    s = S.spike_guard(1.0, ratio=2.0, backoff=0.5, recovery=100, smoothing=0.75)  # 4 updates
    assert trace(s, "loss", [1, 10, 1, 1]) == [1.0] * 4  # a jump among the first 4: no spike
    assert trace(s, "loss", [1, 1, 1, 1, 10])[-1] == 0.5


def test_spike_guard_nonfinite_backs_off_and_wraps_stateful():
    s = S.spike_guard(S.kl_target(1e-3), backoff=0.5, recovery=10)
    state = s.update(s.init(), loss=float("nan"), kl=0.05)
    np.testing.assert_allclose(float(s(state)), 1e-3 / 1.5 * 0.5, rtol=1e-6)


def test_warmup_ramps_then_hands_over_to_step_schedule():
    s = S.warmup(optax.linear_schedule(1.0, 0.0, 4), steps=2, init_value=0.0)
    got = trace(s, "kl", [0] * 6)
    np.testing.assert_allclose(got, [0.5, 1.0, 0.75, 0.5, 0.25, 0.0])


def test_warmup_freezes_stateful_inner_during_ramp():
    s = S.warmup(S.kl_target(1e-3), steps=2)
    got = trace(s, "kl", [0.05, 0.05, 0.05])
    np.testing.assert_allclose(got, [5e-4, 1e-3, 1e-3 / 1.5], rtol=1e-6)


def test_clip_and_from_step_schedule():
    s = S.clip(S.from_step_schedule(optax.linear_schedule(0.0, 10.0, 10)), 2.0, 5.0)
    np.testing.assert_allclose(trace(s, "x", [0] * 7), [2, 2, 3, 4, 5, 5, 5])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.plateau(1.0, factor=1.0), "factor"),
        (lambda: S.plateau(1.0, patience=0), "patience"),
        (lambda: S.plateau(1.0, mode="up"), "mode"),
        (lambda: S.plateau(2.0, max_value=1.0), "init_value"),
        (lambda: S.kl_target(1e-3, target=0.0), "target"),
        (lambda: S.kl_target(1e-3, tolerance=0.5), "tolerance"),
        (lambda: S.kl_target(1.0, max_value=1e-2), "init_value"),  # default max now 10 x init
        (lambda: S.kl_target(1e-3, every=0), "every"),
        (lambda: S.progress(1.0, 0.0, low=1.0, high=1.0), "low and high"),
        (lambda: S.progress(0.0, 1.0, low=0.0, high=1.0, interpolation="log"), "start_value"),
        (lambda: S.progress(1.0, 0.0, low=0.0, high=1.0, smoothing=1.0), "smoothing"),
        (lambda: S.progress(1.0, 0.0, low=0.0, high=1.0, interpolation="cubic"), "interpolation"),
        (lambda: S.bandit([1.0]), "values"),
        (lambda: S.bandit([1.0, 2.0], window=1), "window"),
        (lambda: S.bandit([1.0, 2.0], exploration=-1.0), "exploration"),
        (lambda: S.bandit([1.0, float("inf")]), "finite"),
        (lambda: S.spike_guard(1.0, ratio=1.0), "ratio"),
        (lambda: S.spike_guard(1.0, backoff=1.0), "backoff"),
        (lambda: S.spike_guard(1.0, recovery=0), "recovery"),
        (lambda: S.warmup(1.0, steps=0), "steps"),
        (lambda: S.clip(1.0, 2.0, 1.0), "max_value"),
        (lambda: S.kl_target(1e-3, signal="not a name"), "signal"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_invalid_arguments_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_schedule_is_type_error():
    with pytest.raises(TypeError, match="schedule must be"):
        S.warmup("fast", steps=3)
