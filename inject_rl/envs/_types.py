"""State and per-step output of an in-graph (anakin) environment."""

from typing import Any, NamedTuple

import jax


class EnvState(NamedTuple):
    """State of one environment between steps; a pytree, so it can be a `lax.scan` carry.

    Shapes are for one environment; `jax.vmap` over envs adds a leading batch axis to every leaf.
    """

    func_state: Any  # the FuncEnv's own state pytree, e.g. shape=(4,), dtype=float32 for CartPole
    step: jax.Array  # shape=(), dtype=int32: steps taken in the current episode (0 after reset)


class TimeStep(NamedTuple):
    """What `JaxEnv.step` returns besides the next state.

    With autoreset, `obs` and `next_obs` differ exactly when the episode ended on this step:

    - `obs` is the observation to act on next. When `terminated` or `truncated` is set it is the
      first observation of the new episode, not of the transition that just happened.
    - `next_obs` is always the true observation reached by this transition, before autoreset.
      Bootstrap from it on truncation: the value of `next_obs` is what the time limit cut off.

    Shapes are for one environment (the observation shape is `JaxEnv.obs_shape`).
    """

    obs: jax.Array  # shape=obs_shape, dtype=float32: observation after autoreset
    reward: jax.Array  # shape=(), dtype=float32: reward of this transition
    terminated: jax.Array  # shape=(), dtype=bool: next_obs is a terminal state of the MDP
    truncated: jax.Array  # shape=(), dtype=bool: time limit reached and not terminated
    next_obs: jax.Array  # shape=obs_shape, dtype=float32: observation before autoreset

    @property
    def done(self) -> jax.Array:
        """Whether the episode ended on this step (terminated or truncated); dtype=bool."""
        return self.terminated | self.truncated
