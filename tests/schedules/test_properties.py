"""Property test: random signal sequences with NaN/inf/zero-count entries, for every schedule."""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inject_rl import schedules as S
from tests.schedules._cases import CASE_IDS, CASES

LENGTH = 24


def _scan_fn(case):
    sched = case.make()

    def step(state, inp):
        x, count = inp
        extra = {"episode_return": 1.0, "episode_count": count, "kl": 0.01, "loss": 1.0}
        extra[case.signal] = x
        new = sched.update(state, **extra)
        return new, (new, sched(new))

    return sched, jax.jit(lambda xs, counts: jax.lax.scan(step, sched.init(), (xs, counts)))


_entry = st.one_of(
    st.floats(-1e3, 1e3, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_random_sequences(case):
    sched, run = _scan_fn(case)
    init = sched.init()
    lo, hi = np.float32(case.bounds[0]), np.float32(case.bounds[1])

    # 1,000 sequences per schedule; the jitted scan is compiled once.
    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        xs=st.lists(_entry, min_size=LENGTH, max_size=LENGTH),
        counts=st.lists(st.sampled_from([0.0, 0.0, 1.0, 3.0]), min_size=LENGTH, max_size=LENGTH),
    )
    def check(xs, counts):
        xs = np.asarray(xs, np.float32)
        counts = np.asarray(counts, np.float32)
        _, (states, values) = run(xs, counts)
        values = np.asarray(values)
        assert np.all(np.isfinite(values)), values
        assert np.all((values >= lo) & (values <= hi)), values
        # Steps whose signal must be ignored leave the state bitwise unchanged.
        ignored = ~np.isfinite(xs)
        if case.signal in S.EPISODE_SIGNALS:
            ignored |= counts == 0
        prev = jax.tree.map(
            lambda a, b: np.concatenate([np.asarray(a)[None], np.asarray(b)[:-1]]), init, states
        )
        if case.id == "spike_guard":  # back-off on non-finite is the documented exception
            states, prev = states.inner, prev.inner
        if case.id == "warmup_kl":  # warmup counts every update; its inner state is the test
            states, prev = states.inner, prev.inner
        for a, b in zip(jax.tree.leaves(states), jax.tree.leaves(prev), strict=True):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a[ignored], b[ignored])

    check()
