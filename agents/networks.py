"""Haiku networks shared by the agents: orthogonally initialised MLPs and policy/value heads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np


class MLP(hk.Module):
    """MLP with orthogonal initialisation (the "PPO implementation details" scheme)."""

    def __init__(
        self,
        hidden: Sequence[int],
        out: int,
        *,
        out_scale: float = 1.0,
        activation: Callable = jnp.tanh,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.hidden, self.out, self.out_scale, self.activation = hidden, out, out_scale, activation

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, h in enumerate(self.hidden):
            x = self.activation(
                hk.Linear(h, w_init=hk.initializers.Orthogonal(np.sqrt(2.0)), name=f"h{i}")(x)
            )
        return hk.Linear(self.out, w_init=hk.initializers.Orthogonal(self.out_scale), name="out")(x)


class ActorCriticOut(NamedTuple):
    """Policy parameters and value for a batch of observations."""

    logits: jax.Array  # [B, A] for a discrete policy; the Gaussian mean [B, D] otherwise
    log_std: jax.Array  # [D] state-independent log std (continuous); shape (0,) when discrete
    value: jax.Array  # [B]


def actor_critic(
    num_outputs: int, discrete: bool, hidden: Sequence[int], activation: Callable = jnp.tanh
) -> hk.Transformed:
    """Separate actor and critic MLPs; a learned state-independent log std when continuous."""

    def forward(obs: jax.Array) -> ActorCriticOut:
        logits = MLP(hidden, num_outputs, out_scale=0.01, activation=activation, name="actor")(obs)
        value = MLP(hidden, 1, out_scale=1.0, activation=activation, name="critic")(obs)[..., 0]
        if discrete:
            log_std = jnp.zeros((0,), jnp.float32)
        else:
            log_std = hk.get_parameter("log_std", (num_outputs,), init=jnp.zeros)
        return ActorCriticOut(logits, log_std, value)

    return hk.without_apply_rng(hk.transform(forward))


def q_network(num_actions: int, hidden: Sequence[int]) -> hk.Transformed:
    """Q-values `[B, A]` from a ReLU MLP."""

    def forward(obs: jax.Array) -> jax.Array:
        return MLP(hidden, num_actions, activation=jax.nn.relu, name="q")(obs)

    return hk.without_apply_rng(hk.transform(forward))
