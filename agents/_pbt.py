"""Population-based training's rule and state: rank members, copy the best, perturb.

Jaderberg et al. 2017, inside the compiled step (`inject_rl.agents._population` runs the member
axis this acts on): every `interval` iterations members are ranked by their mean training episode
return since the last exploit step, the bottom `fraction` copies a random top member's training
state and multiplies the chosen hyperparameters by a random factor. Pure jax: the same choices on
every device, deterministic given the seed. Only members that finished an episode since the last
exploit step are ranked.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from inject_rl.optim import hyperparams, scale_hyperparam

# Training-state fields a member keeps when it copies another in PBT's exploit step: its own
# envs, experience, randomness and step count. Everything else (params, target params, optimizer
# and schedule states, best-so-far params, normalisation statistics) is copied, but the running
# discounted return of reward scaling, which follows the member's own envs.
KEEP = ("actor", "replay", "key", "step")

# Hyperparameters in [0, 1) perturbed through their complement (1 - value), so that a factor
# above one cannot push them to 1 or beyond.
COMPLEMENT = frozenset({"b1", "b2", "decay", "momentum", "gamma", "gae_lambda"})


@dataclasses.dataclass(frozen=True)
class PBT:
    """Population-based training's exploit and explore rule.

    Attributes:
      hyperparams: what explore perturbs: injected hyperparameters by their `hyperparams()` names
        (`learning_rate`, `ent_coef`, `b1`...; a scheduled one has its schedule's current value
        scaled) or per-member Config fields given in `values`.
      interval: iterations between two exploit/explore steps (each member's return must be
        measured over several iterations first).
      fraction: the bottom fraction of members replaced each time (at least one member), by
        copies of members drawn from the top fraction.
      perturb: factors explore draws from, uniformly, one per hyperparameter and copied member.
        The defaults (every 5 iterations, x0.5 or x2) are those of scripts/robustness.py's
        measured PBT rows; Jaderberg et al. used x0.8 or x1.2.
      smoothing: weight of the old value in the exponential moving average of each member's
        training episode return that picks the best member at the end (`score`).
      groups: independent populations side by side (contiguous groups of `M / groups` members;
        a member copies only within its group): e.g. one PBT population per (rate, seed) cell
        of a robustness study, all in one program.

    Members are ranked by their mean training episode return over the iterations since the last
    exploit step (`window`), so a member that just copied another is judged on how it does with
    its perturbed values, not on the history it inherited.
    """

    hyperparams: tuple[str, ...]
    interval: int = 5
    fraction: float = 0.25
    perturb: tuple[float, ...] = (0.5, 2.0)
    smoothing: float = 0.9
    groups: int = 1

    def validate(self, size: int) -> PBT:
        if not self.hyperparams or not all(isinstance(h, str) and h for h in self.hyperparams):
            raise ValueError(f"pbt hyperparams must be non-empty names, got {self.hyperparams!r}")
        if isinstance(self.interval, bool) or not isinstance(self.interval, int):
            raise ValueError(f"pbt interval must be an integer >= 1, got {self.interval!r}")
        if self.interval < 1:
            raise ValueError(f"pbt interval must be an integer >= 1, got {self.interval!r}")
        if not (isinstance(self.fraction, numbers.Real) and 0 < self.fraction <= 0.5):
            raise ValueError(f"pbt fraction must be in (0, 0.5], got {self.fraction!r}")
        if not self.perturb or not all(
            isinstance(f, numbers.Real) and math.isfinite(f) and f > 0 for f in self.perturb
        ):
            raise ValueError(f"pbt perturb factors must be positive numbers, got {self.perturb!r}")
        if not (isinstance(self.smoothing, numbers.Real) and 0 <= self.smoothing < 1):
            raise ValueError(f"pbt smoothing must be in [0, 1), got {self.smoothing!r}")
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 1:
            raise ValueError(f"pbt groups must be an integer >= 1, got {self.groups!r}")
        if "seed" in self.hyperparams:
            raise ValueError(
                "pbt cannot perturb seed: it is read once, at init (a member keeps its own); "
                "name injected hyperparameters or float Config fields"
            )
        if size % self.groups or size // self.groups < 2:
            raise ValueError(
                f"population-based training needs groups of at least 2 members: {size} members "
                f"in {self.groups} group(s)"
            )
        return self


class PopulationState(NamedTuple):
    """The population's training state on one device (every leaf of `members` and `values`, and
    `score`, has a leading `[M]` member axis)."""

    members: Any  # the agent's training state, stacked over members
    values: dict[str, jax.Array]  # per-member Config field values (state, not program constants)
    score: jax.Array  # [M] float32: smoothed training episode return, -inf before any episode
    window: jax.Array  # [M, 2] float32: sum and count of finite returns since the last exploit
    key: jax.Array  # PBT's PRNG key (identical on every device)
    iteration: jax.Array  # int32: iterations so far


def _exploit(ps: PopulationState, pbt: PBT, size: int) -> tuple[PopulationState, jax.Array]:
    """PBT's exploit and explore step: `(population, source)`, `source[i]` the member that `i`
    copied (-1 for members left as they were)."""
    groups = pbt.groups
    n = size // groups  # members per group; a member copies only within its group
    k = max(1, int(n * pbt.fraction))
    key, k_pick, k_perturb = jax.random.split(ps.key, 3)
    total, count = ps.window[:, 0], ps.window[:, 1]
    # Only members that finished an episode since the last exploit step are ranked (a diverged
    # member counts, at -inf): one without any is neither replaced nor copied, and with fewer
    # than 2 ranked members in a group nobody is. The bottom k of the ranked copy the top k,
    # k at most half of them.
    ranked = (count > 0).reshape(groups, n)
    rank = jnp.where(count > 0, total / jnp.maximum(count, 1.0), -jnp.inf).reshape(groups, n)
    # Ranked members first, best first; ties: lower index first.
    order = jnp.lexsort((-rank, ~ranked), axis=1)
    position = jnp.argsort(order, axis=1)  # each member's place in `order`
    num_ranked = ranked.sum(axis=1, keepdims=True)
    k_now = jnp.minimum(k, num_ranked // 2)
    slot = position - (num_ranked - k_now)  # 0..k_now-1 for the bottom k_now ranked members
    replaced = (slot >= 0) & (position < num_ranked)
    choice = jax.random.randint(k_pick, (groups, k), 0, jnp.maximum(k_now, 1))
    picks = jnp.take_along_axis(order[:, :k], choice, axis=1)  # the top member each slot copies
    pick = jnp.take_along_axis(picks, jnp.clip(slot, 0, k - 1), axis=1)
    offset = (jnp.arange(groups) * n)[:, None]
    index = jnp.arange(size)
    source = jnp.where(replaced, pick + offset, index.reshape(groups, n)).ravel()
    copied = source != index

    def take(x):
        return x[source]

    members = ps.members
    if not hasattr(members, "_fields"):
        raise TypeError("population-based training needs the agent's state to be a NamedTuple")
    own = members
    members = members._replace(
        **{f: jax.tree.map(take, getattr(members, f)) for f in members._fields if f not in KEEP}
    )
    scale = getattr(members, "reward_scale", None)
    if scale is not None and hasattr(scale, "running_return"):  # the member's own envs'
        members = members._replace(
            reward_scale=scale._replace(running_return=own.reward_scale.running_return)
        )
    # A member keeps its own seed (its envs and key are its own: KEEP); the other values are
    # the copied member's.
    values = {k_: v if k_ == "seed" else take(v) for k_, v in ps.values.items()}
    factors = jnp.asarray(pbt.perturb, jnp.float32)
    keys = jax.random.split(k_perturb, len(pbt.hyperparams))
    injected = hyperparams(members.opt_state)
    for name in pbt.hyperparams:
        if name not in injected and name not in values:
            raise ValueError(
                f"pbt: {name!r} is neither an injected hyperparameter of the optimizer "
                f"({', '.join(injected) or 'none'}) nor a per-member Config field "
                f"({', '.join(values)})"
            )
    for name, k_name in zip(pbt.hyperparams, keys, strict=True):
        factor = jnp.where(copied, jax.random.choice(k_name, factors, (size,)), 1.0)
        complement = name.rsplit("/", 1)[-1] in COMPLEMENT
        if name in injected:
            opt_state = scale_hyperparam(members.opt_state, name, factor, complement=complement)
            members = members._replace(opt_state=opt_state)
        if name in values:  # a per-member Config field (too when injected: what it records)
            v = values[name].astype(jnp.float32)
            v = 1.0 - (1.0 - v) * factor if complement else v * factor
            values[name] = v.astype(values[name].dtype)
    score = take(ps.score)
    window = jnp.zeros_like(ps.window)  # every member starts a new window
    return PopulationState(members, values, score, window, key, ps.iteration), jnp.where(
        copied, source, -1
    ).astype(jnp.int32)
