"""Every schedule of the library, configured for the contract suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import optax

from inject_rl import schedules as S


class Case(NamedTuple):
    id: str
    make: Callable[[], optax.schedules.StatefulSchedule]
    signal: str  # the signal it reads
    low: float  # a range of meaningful signal values for property tests
    high: float
    # Values the output can take: [lo, hi].
    bounds: tuple[float, float]


CASES = [
    Case(
        "plateau",
        lambda: S.plateau(1e-3, patience=2, min_value=1e-5),
        "episode_return",
        0.0,
        500.0,
        (1e-5, 1e-3),
    ),
    Case(
        "plateau_min_grow",
        lambda: S.plateau(
            0.9, signal="loss", mode="min", factor=1.05, max_value=0.99, patience=1, cooldown=2
        ),
        "loss",
        -1.0,
        1.0,
        (0.9, 0.99),
    ),
    # Default bounds are relative to the initial value: [3e-4 / 1000, 10 * 3e-4].
    Case("kl_target", lambda: S.kl_target(3e-4, every=2), "kl", 0.0, 0.1, (3e-7, 3e-3)),
    Case(
        "progress",
        lambda: S.progress(1e-3, 1e-4, low=0.0, high=500.0, interpolation="log"),
        "episode_return",
        -10.0,
        600.0,
        (1e-4, 1e-3),
    ),
    Case(
        "bandit",
        lambda: S.bandit([1e-4, 3e-4, 1e-3], hold=2, window=6),
        "episode_return",
        0.0,
        500.0,
        (1e-4, 1e-3),
    ),
    Case(
        "spike_guard",
        lambda: S.spike_guard(S.kl_target(1e-3), recovery=3),
        "loss",
        0.0,
        10.0,
        (0.0, 1e-2),
    ),
    Case(
        "clip_plateau",
        lambda: S.clip(S.plateau(1.0, factor=0.1, patience=1), 0.05, 0.5),
        "episode_return",
        0.0,
        10.0,
        (0.05, 0.5),
    ),
    Case("warmup_kl", lambda: S.warmup(S.kl_target(1e-3), steps=3), "kl", 0.0, 0.1, (0.0, 1e-2)),
]
CASE_IDS = [c.id for c in CASES]


def signals(case: Case, value, count=1.0) -> dict:
    """The extra_args a learner would pass: the case's signal plus unrelated noise keys."""
    out = {
        "episode_return": 1.0,
        "episode_count": count,
        "kl": 0.01,
        "loss": 1.0,
        "grad_norm": 2.0,
        "step": 7,
    }
    out[case.signal] = value
    return out
