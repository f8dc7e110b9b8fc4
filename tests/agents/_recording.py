"""A user's own optax StatefulSchedule for the agent tests (independent of inject_rl)."""

import jax.numpy as jnp


class RecordingSchedule:
    """A user's own optax StatefulSchedule: counts its updates, records the keys it gets."""

    def __init__(self):
        self.keys_seen: set[str] = set()

    def init(self):
        return {"calls": jnp.zeros((), jnp.int32)}

    def update(self, state, **extra_args):
        self.keys_seen |= set(extra_args)
        return {"calls": state["calls"] + 1}

    def __call__(self, state, **extra_args):
        return jnp.asarray(1e-3, jnp.float32)
