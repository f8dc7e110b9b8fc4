"""Haiku networks: torsos chosen from the observation space, and the agents' heads.

A *torso factory* is `name -> module`, called inside `hk.transform`: the module maps a batch of
observations `[B, *obs]` to features `[B, F]`. Agents put their heads (policy logits, values,
Q-values) on top, so a user's own torso (`train(cfg, network=...)`) changes no agent code:

>>> import haiku as hk, jax, jax.numpy as jnp
>>> torso = torso_for((4,), hidden=(32,))
>>> net = hk.without_apply_rng(hk.transform(lambda x: torso("t")(x)))
>>> params = net.init(jax.random.key(0), jnp.zeros((1, 4)))
>>> net.apply(params, jnp.zeros((5, 4))).shape
(5, 32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from inject_rl.signals import RunningMeanStd, RunningMeanStdState

TorsoFactory = Callable[[str], Callable[[jax.Array], jax.Array]]


class MLP(hk.Module):
    """Hidden layers with orthogonal initialisation (the "PPO implementation details" scheme)."""

    def __init__(
        self,
        hidden: Sequence[int],
        *,
        activation: Callable = jnp.tanh,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.hidden, self.activation = tuple(hidden), activation

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        for i, h in enumerate(self.hidden):
            x = self.activation(
                hk.Linear(h, w_init=hk.initializers.Orthogonal(np.sqrt(2.0)), name=f"h{i}")(x)
            )
        return x


class Conv2D(hk.Module):
    """`hk.Conv2D(channels, kernel, stride, padding="VALID")` on NHWC frames: the same
    parameters (`w` `[k, k, C, channels]`, `b` `[channels]`), names and initialisation, so
    params and checkpoints are interchangeable with it.

    On CPU it computes the convolution as patches (`k * k` strided slices, stacked along the
    channels) times `w` as a matrix: XLA's CPU convolution runs several times slower inside a
    loop body than outside one (jax-ml/jax#12868), and every training step runs inside a
    `lax.scan`. Measured on a quiet 2-core machine (`scripts/bench_conv.py`, jax 0.10.2): the
    MinAtar torso's gradient step on 128 frames, 2.2 ms alone, 11.3 ms per step in a `lax.scan`
    through `lax.conv`, 1.6 ms through patches (84x84 frames: 240 vs 19 ms in a scan).
    Elsewhere (GPU, TPU) `lax.conv`.
    """

    def __init__(self, channels: int, kernel: int, stride: int, name: str | None = None):
        super().__init__(name=name)
        self.channels, self.kernel, self.stride = channels, kernel, stride

    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel, self.stride
        w_shape = (k, k, x.shape[-1], self.channels)
        w_init = hk.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(np.prod(w_shape[:-1])))
        w = hk.get_parameter("w", w_shape, x.dtype, init=w_init)
        b = hk.get_parameter("b", (self.channels,), x.dtype, init=jnp.zeros)
        if jax.default_backend() != "cpu":
            out = jax.lax.conv_general_dilated(
                x, w, (s, s), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return out + b
        oh, ow = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
        patches = jnp.concatenate(
            [
                x[:, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s, :]
                for i in range(k)
                for j in range(k)
            ],
            axis=-1,
        )  # [B, oh, ow, k * k * C], ordered as w's first three axes
        return patches @ w.reshape(-1, self.channels) + b


class ConvTorso(hk.Module):
    """A conv stack for image observations `[B, H, W, C]`, then the MLP layers.

    Frames of at least 36 pixels a side get the Nature-DQN stack (8x8/4, 4x4/2, 3x3/1; Mnih et al.
    2015); smaller ones (MinAtar's 10x10xC) one 3x3 convolution of 16 channels, as in MinAtar's
    own baselines (Young & Tian 2019), where the Nature stack cannot run.
    """

    def __init__(self, hidden: Sequence[int], *, activation=jax.nn.relu, name=None):
        super().__init__(name=name)
        self.hidden, self.activation = tuple(hidden), activation

    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-3]  # any leading axes ([B] or [T, B]) around one [H, W, C] frame
        x = x.reshape((-1, *x.shape[-3:])).astype(jnp.float32)
        if min(x.shape[1:3]) >= 36:
            layers = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
        else:
            layers = ((16, 3, 1),)
        for i, (channels, kernel, stride) in enumerate(layers):
            x = jax.nn.relu(Conv2D(channels, kernel, stride, name=f"c{i}")(x))
        x = x.reshape((*lead, -1))
        return MLP(self.hidden, activation=self.activation, name="mlp")(x)


def mlp(hidden: Sequence[int], activation: Callable = jnp.tanh) -> TorsoFactory:
    """A torso factory of `hidden` dense layers."""
    return lambda name: MLP(hidden, activation=activation, name=name)


def torso_for(
    obs_shape: tuple[int, ...], hidden: Sequence[int], activation: Callable = jnp.tanh
) -> TorsoFactory:
    """The default torso for observations of `obs_shape`: an MLP for vectors, a conv stack then
    the MLP for images `[H, W, C]` (H and W at least 3, as `inject_rl.envs.ObsPreprocessor`
    keeps them; it flattens every other observation, Dict, Tuple and one-hot Discrete ones
    included, into a vector)."""
    if len(obs_shape) == 3 and min(obs_shape[:2]) >= 3:
        return lambda name: ConvTorso(hidden, name=name)
    return mlp(hidden, activation)


def default(activation: Callable = jnp.tanh) -> Callable[[Any, tuple[int, ...]], TorsoFactory]:
    """An agent's default network: `(cfg, obs_shape) -> torso_for(obs_shape, cfg.hidden)`."""
    return lambda cfg, obs_shape: torso_for(obs_shape, cfg.hidden, activation)


def head(out: int, scale: float = 1.0, name: str = "out") -> hk.Linear:
    """A linear output layer, orthogonally initialised with gain `scale`."""
    return hk.Linear(out, w_init=hk.initializers.Orthogonal(scale), name=name)


# The key under which params carry the observation statistics of a run trained with
# `normalize_obs` (`with_obs_norm`): a dict {"mean", "var", "count"} of arrays, so the saved
# params (`inject_rl.runs.save_params`, plain nested dicts) and `load_policy` carry them.
OBS_NORM = "obs_norm"


def with_obs_norm(params: dict, stats: RunningMeanStdState | None) -> dict:
    """`params` carrying the observation statistics `stats` (`params` itself when None).

    >>> import jax.numpy as jnp
    >>> from inject_rl.signals import RunningMeanStd
    >>> stats = RunningMeanStd.update(RunningMeanStd.init((1,)), jnp.array([[1.0], [3.0]]))
    >>> p, obs = normalized_input(with_obs_norm({"w": 1}, stats), jnp.array([[3.0]]))
    >>> p, obs.round(3).tolist()
    ({'w': 1}, [[1.0]])
    """
    if stats is None:
        return params
    return {**params, OBS_NORM: dict(stats._asdict())}


def normalized_input(params: Any, obs: jax.Array) -> tuple[Any, jax.Array]:
    """`(network params, network input)`: when `params` carry observation statistics
    (`with_obs_norm`), `obs` normalised by them (`RunningMeanStd.normalize`: standardised,
    clipped to +-10) and the params without them; else both unchanged."""
    if not isinstance(params, dict) or OBS_NORM not in params:
        return params, obs
    stats = RunningMeanStdState(**params[OBS_NORM])
    rest = {k: v for k, v in params.items() if k != OBS_NORM}
    return rest, RunningMeanStd.normalize(stats, obs)


def q_network(num_actions: int, torso: TorsoFactory) -> hk.Transformed:
    """Q-values `[B, A]`: the torso, then a linear head."""
    # Module names as when the network was one "q" MLP: params flatten in the same order.
    forward = lambda obs: head(num_actions, name="q_out")(torso("q")(obs))  # noqa: E731
    return hk.without_apply_rng(hk.transform(forward))
