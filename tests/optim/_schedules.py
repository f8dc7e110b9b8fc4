"""Small `optax.schedules.StatefulSchedule`s for the optim tests (independent of inject_rl)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ConstantState(NamedTuple):
    value: jax.Array  # shape=(), dtype=float32


class Constant:
    """Always returns `value`; its state holds the value, like a stateful schedule would."""

    def __init__(self, value: float):
        self.value = value

    def init(self) -> ConstantState:
        return ConstantState(jnp.asarray(self.value, jnp.float32))

    def update(self, state: ConstantState, **extra_args) -> ConstantState:
        del extra_args
        return state

    def __call__(self, state: ConstantState, **extra_args) -> jax.Array:
        del extra_args
        return state.value


class RecordingState(NamedTuple):
    last: jax.Array  # shape=(), dtype=float32; the last value of the recorded signal
    calls: jax.Array  # shape=(), dtype=int32; number of updates


class Recording:
    """Returns `value` and records the signal `key` it receives in `extra_args`."""

    def __init__(self, value: float, key: str = "kl"):
        self.value = value
        self.key = key

    def init(self) -> RecordingState:
        return RecordingState(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))

    def update(self, state: RecordingState, **extra_args) -> RecordingState:
        last = jnp.asarray(extra_args[self.key], jnp.float32)
        return RecordingState(last, state.calls + 1)

    def __call__(self, state: RecordingState, **extra_args) -> jax.Array:
        del state, extra_args  # `init` calls this without extra_args
        return jnp.asarray(self.value, jnp.float32)
