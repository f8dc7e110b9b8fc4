"""The on-policy actor-critic agents' policy (PPO, IMPALA): `ActorCritic` over an env's action
space and its acting functions.

Split from `agents/_actor_critic.py` when that outgrew one file (STYLE.md "Layout and size").
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import distrax
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from inject_rl import envs
from inject_rl.agents import networks
from inject_rl.agents._contract import Acting

# Logit of the padding that lines MultiDiscrete components of different sizes up in one array.
_PAD_LOGIT = -1e9


def _categorical_sample(logits: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(action int32 [...], log_prob [...])`: bitwise what `distrax.Categorical(logits)
    .sample_and_log_prob(seed=key)` returns for finite logits, in fewer kernels per env step.

    Acting runs once per env step, so its kernels count (issue 16 item 4: our rollout step had
    10 more than a minimal PPO's). distrax also computes the softmax to check every probability
    is finite and non-negative (a draw of -1 otherwise) and gathers the log-probability with a
    one-hot product; here the draw is the same `jax.random.categorical` on the same normalised
    logits and key (shape `(1, ...)`, as distrax draws one sample), the log-probability a
    gather. Non-finite logits are left to the divergence checks of the loss and params.
    """
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # distrax's normalised logits
    draw = jax.random.categorical(key, log_probs, axis=-1, shape=(1, *logits.shape[:-1]))[0]
    action = draw.astype(jnp.int32)
    return action, jnp.take_along_axis(log_probs, action[..., None], axis=-1)[..., 0]


class Output(NamedTuple):
    """Policy parameters and value for a batch of observations."""

    # [B, A] (Discrete); [B, sum(nvec)] (MultiDiscrete, components concatenated); else the
    # Gaussian mean [B, D]
    logits: jax.Array
    log_std: jax.Array  # [D] state-independent log std (continuous); shape (0,) when discrete
    value: jax.Array  # [B]


class ActorCritic:
    """Separate actor and critic networks (each a torso and a head) for an env's action space:
    a categorical policy for `Discrete`; for `MultiDiscrete` a factorised categorical, one
    independent categorical per component (log-probability and entropy summed over the
    components, greedy = each component's argmax; as cleanrl's `ppo_multidiscrete`); a
    diagonal Gaussian with a learned state-independent log std, starting at `log_std_init`, for
    `Box` (unsquashed; the env clips actions to its bounds)."""

    def __init__(self, env: Any, torso: networks.TorsoFactory, log_std_init: float = 0.0):
        kind = envs.action_kind(env.action_space)
        self.discrete, self.multi_discrete = kind == envs.DISCRETE, kind == envs.MULTI_DISCRETE
        if self.discrete:
            out = env.num_actions
        elif self.multi_discrete:
            out = self._init_components(env.action_space)
        else:
            self.box_shape = tuple(env.action_shape)  # the head is flat: [..., prod(shape)]
            out = int(math.prod(env.action_shape))

        def forward(obs: jax.Array) -> Output:
            # Head names sort right after their torso's: params flatten in the order they did
            # when each network was one MLP module, so results stay bitwise as before.
            logits = networks.head(out, 0.01, name="actor_out")(torso("actor")(obs))
            value = networks.head(1, 1.0, name="critic_out")(torso("critic")(obs))[..., 0]
            if self.discrete:
                log_std = jnp.zeros((0,), jnp.float32)
            else:
                init = hk.initializers.Constant(log_std_init)
                log_std = hk.get_parameter("log_std", (out,), init=init)
            return Output(logits, log_std, value)

        self.net = hk.without_apply_rng(hk.transform(forward))

    def apply(self, params, obs) -> Output:
        """The network's output; `params` may carry observation statistics
        (`networks.with_obs_norm`), which then normalise `obs` first."""
        return self.net.apply(*networks.normalized_input(params, obs))

    def _init_components(self, space: Any) -> int:
        """Static gather of the concatenated component logits into `[K, max_n]`, padded."""
        nvec = np.asarray(space.nvec, np.int64).reshape(-1)
        self.action_shape, self.num_components = tuple(space.shape), len(nvec)
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        width = np.arange(int(nvec.max()))
        self.component_mask = width < nvec[:, None]  # [K, max_n]
        self.component_index = np.where(self.component_mask, offsets[:, None] + width, 0)
        return int(nvec.sum())

    def dist(self, out: Output):
        if self.discrete:
            return distrax.Categorical(logits=out.logits)
        if self.multi_discrete:
            logits = self._component_logits(out)
            return distrax.Independent(distrax.Categorical(logits=logits), 1)
        scale = jnp.broadcast_to(jnp.exp(out.log_std), out.logits.shape)
        return distrax.MultivariateNormalDiag(out.logits, scale)

    def _component_logits(self, out: Output) -> jax.Array:
        """`[..., K, max_n]` logits of the MultiDiscrete components; the padding gets
        probability exactly 0 (exp underflows), so it is never sampled, never the argmax, and
        adds 0 to the entropy."""
        logits = out.logits[..., self.component_index]
        return jnp.where(self.component_mask, logits, _PAD_LOGIT)

    def _components(self, out: Output, action: jax.Array) -> jax.Array:
        """`[..., *action_shape]` MultiDiscrete actions as `[..., K]`."""
        return action.reshape((*out.logits.shape[:-1], self.num_components))

    def _action(self, out: Output, action: jax.Array) -> jax.Array:
        """`[..., K]` component actions as `[..., *action_shape]` int32."""
        return action.reshape((*out.logits.shape[:-1], *self.action_shape)).astype(jnp.int32)

    def sample(self, params, obs, key):
        out = self.apply(params, obs)
        if self.discrete:
            action, log_prob = _categorical_sample(out.logits, key)
            return action, {"log_prob": log_prob, "value": out.value}
        action, log_prob = self.dist(out).sample_and_log_prob(seed=key)
        if self.multi_discrete:
            action = self._action(out, action)
        else:
            action = self._box(out, action)
        return action, {"log_prob": log_prob, "value": out.value}

    def _box(self, out: Output, flat: jax.Array) -> jax.Array:
        """`[..., prod(shape)]` Gaussian actions as `[..., *shape]` of the Box (a rank-2 Box
        used to reach the env flat, and fail)."""
        return flat.reshape((*out.logits.shape[:-1], *self.box_shape))

    def evaluate(self, params, obs, action):
        out = self.apply(params, obs)
        dist = self.dist(out)
        if self.multi_discrete:
            action = self._components(out, action)
        elif not self.discrete:
            action = action.reshape(out.logits.shape)
        return dist.log_prob(action), dist.entropy(), out.value

    def greedy(self, params, obs):
        out = self.apply(params, obs)
        if self.multi_discrete:
            return self._action(out, jnp.argmax(self._component_logits(out), -1))
        if self.discrete:
            return jnp.argmax(out.logits, -1).astype(jnp.int32)
        return self._box(out, out.logits)


def acting(cfg: Any, env: Any, torso: networks.TorsoFactory) -> Acting:
    policy = ActorCritic(env, torso, cfg.log_std_init)
    return Acting(policy.greedy, lambda p, obs, key: policy.sample(p, obs, key)[0])


# The action spaces of `ActorCritic`: an unbounded Box too (the Gaussian needs no bounds).
ACTIONS = (envs.DISCRETE, envs.MULTI_DISCRETE, envs.CONTINUOUS, envs.UNBOUNDED)
