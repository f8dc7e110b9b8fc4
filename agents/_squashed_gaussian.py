"""SAC's policy: a tanh-squashed Gaussian actor and twin Q critics for a `Box` action space.

Each critic joins the action to the observation where a torso can take both: for vector
observations the torso runs on `[obs, action]` (as SB3's and cleanrl's MLP critics do); for
images the torso (conv stack) runs on the observation alone, then an MLP of the same widths on
`[features, action]` (SB3's `ContinuousCritic` after its features extractor). Actor params may
carry observation statistics (`networks.with_obs_norm`), which normalise its input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import distrax
import haiku as hk
import jax
import jax.numpy as jnp

from inject_rl.agents import networks

_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 2.0  # as in cleanrl / SB3


class SquashedGaussianPolicy:
    """Actor and twin critics for a Box action space; actions are tanh-squashed into bounds."""

    def __init__(self, env: Any, torso: networks.TorsoFactory, hidden: Sequence[int] = (64, 64)):
        self.action_shape = env.action_shape
        dim = int(math.prod(env.action_shape))
        self.dim = dim
        low, high = env.action_low.reshape(-1), env.action_high.reshape(-1)
        self.scale = jnp.asarray((high - low) / 2.0)
        self.center = jnp.asarray((high + low) / 2.0)
        self.low, self.high = jnp.asarray(low), jnp.asarray(high)

        # Head names sort right after their torso's: params flatten in the order they did when
        # each network was one MLP module.
        def actor(obs):
            out = networks.head(2 * dim, name="actor_out")(torso("actor")(obs))
            mean, log_std = jnp.split(out, 2, axis=-1)
            log_std = _LOG_STD_MIN + 0.5 * (_LOG_STD_MAX - _LOG_STD_MIN) * (jnp.tanh(log_std) + 1)
            return mean, log_std

        vector = len(env.obs_shape) == 1

        def q(name, obs, action):
            if vector:  # params and results as before images were handled (one joint torso)
                x = torso(name)(jnp.concatenate([obs, action], axis=-1))
            else:
                x = jnp.concatenate([torso(name)(obs), action], axis=-1)
                x = networks.MLP(hidden, activation=jax.nn.relu, name=f"{name}_joint")(x)
            return networks.head(1, name=f"{name}_out")(x)[..., 0]

        def critic(obs, action):
            return q("q1", obs, action), q("q2", obs, action)

        self.actor = hk.without_apply_rng(hk.transform(actor))
        self.critic = hk.without_apply_rng(hk.transform(critic))

    def init(self, key, obs_shape, init_alpha):
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, *obs_shape), jnp.float32)
        return {
            "actor": self.actor.init(k_actor, obs),
            "critic": self.critic.init(k_critic, obs, jnp.zeros((1, self.dim), jnp.float32)),
            "alpha": {"log_alpha": jnp.asarray(math.log(init_alpha), jnp.float32)},
        }

    def sample(self, actor_params, obs, key):
        """Actions `[B, D]` in the env's bounds and their log-probabilities `[B]`."""
        mean, log_std = self.actor.apply(*networks.normalized_input(actor_params, obs))
        dist = distrax.Transformed(
            distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), 1)
        )
        squashed, log_prob = dist.sample_and_log_prob(seed=key)
        # The affine map into [low, high] shifts every log-density by -sum(log(scale)).
        return squashed * self.scale + self.center, log_prob - jnp.sum(jnp.log(self.scale))

    def greedy(self, actor_params, obs):
        mean, _ = self.actor.apply(*networks.normalized_input(actor_params, obs))
        return self._shape(jnp.tanh(mean) * self.scale + self.center)

    def explore(self, actor_view, obs, key):
        """The behaviour policy: uniform random until learning starts, then `sample`."""
        actor_params, learning = actor_view
        k_pi, k_uniform = jax.random.split(key)
        action, _ = self.sample(actor_params, obs, k_pi)
        uniform = jax.random.uniform(k_uniform, action.shape, minval=self.low, maxval=self.high)
        return self._shape(jnp.where(learning, action, uniform)), {}

    def _shape(self, action):
        return action.reshape((action.shape[0], *self.action_shape))
