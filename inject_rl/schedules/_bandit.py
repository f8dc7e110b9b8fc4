"""In-graph sliding-window UCB over a finite set of hyperparameter values (Agent57-style)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from inject_rl.schedules import _common as c

_NAME = "bandit"


class BanditState(NamedTuple):
    """State of `bandit`; the candidate values live here, so changing them never recompiles."""

    values: jax.Array  # shape=(K,), dtype=float32; candidate values (the arms)
    arm: jax.Array  # shape=(), dtype=int32; arm currently held
    held: jax.Array  # shape=(), dtype=int32; acting updates spent on the current arm
    hold_total: jax.Array  # shape=(), dtype=float32; sum of the signal while the arm was held
    hist_arm: jax.Array  # shape=(W,), dtype=int32; arm of each remembered hold, -1 when empty
    hist_reward: jax.Array  # shape=(W,), dtype=float32; mean signal of each remembered hold
    ptr: jax.Array  # shape=(), dtype=int32; next slot of the ring buffer
    window: c.Window  # `every` accumulation of the signal
    hold: jax.Array  # shape=(), dtype=int32
    exploration: jax.Array  # shape=(), dtype=float32
    sign: jax.Array  # shape=(), dtype=float32; +1 for mode="max", -1 for mode="min"


class Bandit:
    """Stateful schedule choosing among fixed values by sliding-window UCB. Built by `bandit`."""

    def __init__(self, values, *, signal, mode, window, exploration, hold, every):
        if (
            isinstance(values, (str, bytes))
            or not isinstance(values, Sequence | np.ndarray | jax.Array)
            or getattr(values, "ndim", 1) != 1
        ):
            raise ValueError(f"{_NAME}: values must be a sequence of >= 2 numbers, got {values!r}")
        self.values = tuple(c.check_range(_NAME, f"values[{i}]", v) for i, v in enumerate(values))
        if len(self.values) < 2:
            raise ValueError(f"{_NAME}: values must hold >= 2 candidates, got values={values!r}")
        if any(not c.is_traced(v) and math.isinf(v) for v in self.values):
            raise ValueError(f"{_NAME}: values must be finite, got values={values!r}")
        self.signal = c.check_signal(_NAME, signal)
        self.mode = c.check_choice(_NAME, "mode", mode, ("max", "min"))
        self.window = c.check_int(_NAME, "window", window, len(self.values))
        self.exploration = c.check_range(_NAME, "exploration", exploration, 0.0)
        self.hold = c.check_int(_NAME, "hold", hold, 1)
        self.every = c.check_int(_NAME, "every", every, 1)

    def __repr__(self) -> str:
        return (
            f"bandit({list(self.values)}, signal={self.signal!r}, mode={self.mode!r}, "
            f"window={self.window}, exploration={self.exploration}, hold={self.hold}, "
            f"every={self.every})"
        )

    def init(self) -> BanditState:
        return BanditState(
            values=c.f32(self.values),
            arm=c.i32(0),
            held=c.i32(0),
            hold_total=c.f32(0.0),
            hist_arm=jnp.full((self.window,), -1, jnp.int32),
            hist_reward=jnp.zeros((self.window,), jnp.float32),
            ptr=c.i32(0),
            window=c.init_window(self.every),
            hold=c.i32(self.hold),
            exploration=c.f32(self.exploration),
            sign=c.f32(1.0 if self.mode == "max" else -1.0),
        )

    def update(self, state: BanditState, **extra_args) -> BanditState:
        x, counted = c.read_signal(_NAME, self.signal, extra_args)
        window, ready, mean = c.accumulate(state.window, x, counted, self.every)
        held = state.held + 1
        hold_total = state.hold_total + state.sign * mean
        holding = state._replace(held=held, hold_total=hold_total)

        def finish(state: BanditState) -> BanditState:
            hist_arm = state.hist_arm.at[state.ptr].set(state.arm)
            hist_reward = state.hist_reward.at[state.ptr].set(hold_total / held.astype(jnp.float32))
            return state._replace(
                arm=_ucb_choice(hist_arm, hist_reward, state.exploration, state.values.shape[0]),
                # Zeros of the state's own kind: constants here are not device-varying, and
                # under shard_map with a per-device state the two cond branches then differed.
                held=jnp.zeros_like(state.held),
                hold_total=jnp.zeros_like(state.hold_total),
                hist_arm=hist_arm,
                hist_reward=hist_reward,
                ptr=(state.ptr + 1) % state.hist_arm.shape[0],
            )

        # The UCB choice touches the whole window: compute it only when a hold ends (under
        # vmap `cond` becomes a select and both run, which is still correct).
        acted = jax.lax.cond(held >= state.hold, finish, lambda s: holding, state)
        return c.select(ready, acted, state)._replace(window=window)

    def __call__(self, state: BanditState, **extra_args) -> jax.Array:
        del extra_args
        return state.values[state.arm]


def _ucb_choice(hist_arm, hist_reward, exploration, num_arms):
    """Sliding-window UCB: untried arms first (lowest index), then mean + bonus.

    Rewards in the window are min-max normalised to [0, 1] so `exploration` does not depend on
    the signal's scale (a CartPole return is O(100), a KL O(0.01)).
    """
    valid = hist_arm >= 0
    lo = jnp.min(jnp.where(valid, hist_reward, jnp.inf))
    hi = jnp.max(jnp.where(valid, hist_reward, -jnp.inf))
    spread = hi - lo
    norm = jnp.where(spread > 0, (hist_reward - lo) / jnp.where(spread > 0, spread, 1.0), 0.5)
    onehot = (hist_arm[:, None] == jnp.arange(num_arms)[None, :]) & valid[:, None]
    pulls = onehot.sum(0).astype(jnp.float32)  # shape=(K,)
    means = (onehot * norm[:, None]).sum(0) / jnp.maximum(pulls, 1.0)
    total = jnp.maximum(valid.sum().astype(jnp.float32), 1.0)
    bonus = exploration * jnp.sqrt(jnp.log(total) / jnp.maximum(pulls, 1.0))
    score = jnp.where(pulls > 0, means + bonus, jnp.inf)
    return jnp.argmax(score).astype(jnp.int32)


def bandit(
    values: Sequence[c.Scalar] | jax.Array,
    *,
    signal: str = "episode_return",
    mode: str = "max",
    window: int = 50,
    exploration: c.Scalar = 1.0,
    hold: int = 10,
    every: int = 1,
) -> Bandit:
    """Choose the value among `values` by in-graph sliding-window UCB (Agent57's meta-controller).

    An arm (candidate value) is held for `hold` acting updates and scored by the mean signal seen
    while it was held; the last `window` holds are remembered. Then the next arm is the untried one
    with the lowest index or, once all were tried in the window, the one maximising
    `normalised mean + exploration * sqrt(log(n) / n_arm)`. Deterministic: no RNG in the state.

    Args:
      values: >= 2 finite candidate values.
      signal: the `extra_args` key scoring the arms.
      mode: "max" (higher signal is better) or "min".
      window: holds remembered, >= len(values).
      exploration: >= 0 UCB bonus weight on min-max normalised scores.
      hold: >= 1 acting updates per arm before choosing again.
      every: act once per `every` counted updates, on their mean signal.

    Returns:
      A `Bandit` satisfying `optax.schedules.StatefulSchedule`.

    Raises:
      ValueError: an argument is outside its allowed range.

    >>> lr = bandit([1e-4, 3e-4, 1e-3], hold=1)
    >>> state = lr.init()
    >>> for ret in [10.0, 50.0, 20.0]:  # each arm tried once
    ...     state = lr.update(state, episode_return=ret, episode_count=1)
    >>> print(f"{float(lr(state)):.0e}")  # best arm so far
    3e-04
    """
    return Bandit(
        values,
        signal=signal,
        mode=mode,
        window=window,
        exploration=exploration,
        hold=hold,
        every=every,
    )
