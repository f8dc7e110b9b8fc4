"""The Agent contract: what an agent declares, and the one place the CLI, the studies and both
loops read agent facts from (nothing is found by `hasattr`, `inspect` or tuple lengths).

An agent is an `Agent` value: its `Config` class, its default optimizer, its network and policy
factories and the learner builders of the loops it supports. `inject_rl.agents.register` adds one
under a name; a package adds one to `inject-rl` through the entry-point group `inject_rl.agents`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import optax

from inject_rl.agents import networks

# The type of a Config field whose value is injected into the optimizer state: a number (a
# constant) or a signal-driven schedule. The CLI's `--hp NAME=SPEC` sets exactly these fields.
Injectable = float | optax.schedules.StatefulSchedule

ANAKIN, SEBULBA = "anakin", "sebulba"


class Spaces(Protocol):
    """What a learner or policy reads of an env: `inject_rl.envs.JaxEnv` and `HostEnv` both are.

    `obs_shape` is the shape of one observation as the networks get it (for a `HostEnv`, after
    its `ObsPreprocessor`), not necessarily `observation_space.shape`.
    """

    observation_space: Any
    action_space: Any
    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int
    action_shape: tuple[int, ...]


class AnakinLearner(NamedTuple):
    """What `inject_rl.loops.run` trains (in-graph envs).

    The training state (a pytree; a NamedTuple by convention) has at least `params`,
    `opt_state` and `step` (env steps so far, int32): every run reports `step` and the
    optimizer's injected `hp/*` values beside the agent's own metrics.
    """

    init: Callable[[Any], Any]  # device_index -> TrainState
    iteration: Callable[[Any, str | None], tuple[Any, dict[str, Any]]]  # (state, axis) -> ...


class SebulbaLearner(NamedTuple):
    """What `inject_rl.loops.run_sebulba` trains (host envs on actor threads)."""

    init: Callable[[Any], Any]  # device_index -> TrainState
    act: Callable[[Any, Any, Any], tuple[Any, dict[str, Any]]]  # (actor params, obs, key)
    learn: Callable[[Any, Any, str | None], tuple[Any, dict[str, Any]]]  # (state, rollout, axis)
    rollout_len: int  # steps per env per iteration
    staleness: int  # rollout i acts with the params of iteration i - staleness
    actor_params: Callable[[Any], Any] = lambda state: state.params  # what `act` receives
    num_actor_threads: int = 1


class Acting(NamedTuple):
    """A policy's pure functions over a batch `[B, *obs]`; `params` is the agent's whole
    `TrainResult.params`."""

    greedy: Callable[[Any, Any], Any]  # (params, obs) -> action [B, ...]
    sample: Callable[[Any, Any, Any], Any]  # (params, obs, key) -> action [B, ...]


NetworkFactory = Callable[[Any, tuple[int, ...]], networks.TorsoFactory]


@dataclasses.dataclass(frozen=True)
class Agent:
    """An agent's declaration. Every callable is pure setup: building one runs no training.

    Attributes:
      name: registry name (`inject-rl train --agent NAME`).
      description: one line for `inject-rl list`.
      config: frozen dataclass of settings with `validate()`, `env_id`, `seed`, `total_steps`,
        `num_envs`, `num_calls`, `iterations_per_call` and `steps_per_iteration`; fields typed
        `Injectable` are injected hyperparameters.
      default_optimizer: `(cfg, factory=optax.adam, **hyperparams) -> optimizer`; the learning
        rate(s) come from the Config, `hyperparams` (Adam's `b1`...) go to `factory`.
      network: `(cfg, obs_shape) -> torso factory`, the default network (`train(network=...)`
        replaces it); heads are the agent's own.
      policy: `(cfg, spaces, torso) -> Acting`.
      anakin: `(cfg, env, optimizer, num_devices, torso) -> AnakinLearner`, or None.
      sebulba: `(cfg, env, optimizer, num_devices, torso) -> SebulbaLearner`, or None.
      presets: env id -> Config values known to work there (`config_for`).
      actions: the action spaces it handles (`inject_rl.envs.action_kind`): "discrete"
        (`Discrete`), "multi_discrete" (`MultiDiscrete`), "continuous" (a float `Box` with finite
        bounds), "unbounded" (a float `Box` with an infinite bound).
      final_params: the params a run keeps from its final state (DQN: the best evaluated).
    """

    name: str
    description: str
    config: type
    default_optimizer: Callable[..., optax.GradientTransformationExtraArgs]
    network: NetworkFactory
    policy: Callable[[Any, Spaces, networks.TorsoFactory], Acting]
    anakin: Callable[..., AnakinLearner] | None = None
    sebulba: Callable[..., SebulbaLearner] | None = None
    presets: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    actions: tuple[str, ...] = ("discrete", "continuous")
    final_params: Callable[[Any], Any] = lambda state: state.params

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"agent name must be an identifier, got {self.name!r}")
        if self.anakin is None and self.sebulba is None:
            raise ValueError(f"agent {self.name}: needs an anakin or a sebulba learner (or both)")
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"agent {self.name}: config must be a dataclass, got {self.config!r}")

    @property
    def loops(self) -> tuple[str, ...]:
        """The loops this agent trains on: "anakin" (in-graph envs), "sebulba" (host envs)."""
        return tuple(
            loop for loop, fn in ((ANAKIN, self.anakin), (SEBULBA, self.sebulba)) if fn is not None
        )

    @property
    def injectable(self) -> tuple[str, ...]:
        """Config fields typed `Injectable` (`float | StatefulSchedule`)."""
        hints = typing.get_type_hints(self.config)
        return tuple(
            f.name for f in dataclasses.fields(self.config) if _is_injectable(hints[f.name])
        )

    def defaults(self) -> dict[str, Any]:
        """The Config's field defaults."""
        return {f.name: f.default for f in dataclasses.fields(self.config)}

    def config_for(self, env_id: str, **overrides: Any) -> Any:
        """The preset for `env_id` (the Config's defaults otherwise), with `overrides`.

        `envpool/<TaskId>` without a preset of its own takes the preset of the gymnasium id
        `<TaskId>` (envpool's tasks are the same envs, stepped in C++).
        """
        fields = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; allowed: {sorted(fields)}")
        preset = self.presets.get(env_id)
        if preset is None and env_id.startswith("envpool/"):
            preset = self.presets.get(env_id.removeprefix("envpool/"))
        return self.config(**{**(preset or {}), **overrides, "env_id": env_id})

    def check_env(self, env: Spaces) -> None:
        """Raises ValueError naming the env's action space when this agent cannot act in it."""
        from inject_rl.envs import ACTION_KIND_NAMES, action_kind

        try:
            kind = action_kind(env.action_space)
        except ValueError:
            kind = None
        if kind not in self.actions:
            names = [ACTION_KIND_NAMES.get(k, k) for k in self.actions]
            allowed = " or ".join([", ".join(names[:-1]), names[-1]] if names[:-1] else names)
            raise ValueError(
                f"{self.name} needs a {allowed} action space, but "
                f"{getattr(env, 'id', 'the env')} has {env.action_space}"
            )

    def config_from_json(self, values: Any, source: str) -> dict[str, Any]:
        """Config field values from a JSON object (config.json, `--config`): names checked,
        lists as tuples, spec strings of injectable fields parsed (never evaluated).

        Raises:
          ValueError: not an object, an unknown field, or a bad spec (one line, naming `source`).
        """
        from inject_rl import schedules

        if not isinstance(values, dict):
            raise ValueError(f"{source} must hold a JSON object of Config fields, got {values!r}")
        defaults = self.defaults()
        unknown = sorted(set(values) - set(defaults))
        if unknown:
            raise ValueError(
                f"{source}: unknown {self.name} Config field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(defaults)}"
            )
        out = {}
        for name, v in values.items():
            if name in self.injectable and isinstance(v, str):
                try:
                    v = schedules.parse(v)
                except ValueError as e:
                    raise ValueError(f"{source} {name}: {e}") from None
            elif isinstance(defaults[name], tuple) and isinstance(v, list):
                v = tuple(v)
            out[name] = v
        return out

    def config_to_json(self, cfg: Any) -> dict[str, Any]:
        """The whole Config as JSON values, schedules as their spec strings."""
        from inject_rl import schedules

        out = {}
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            if isinstance(v, optax.schedules.StatefulSchedule):
                v = schedules.to_spec(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    def train(self, cfg: Any = None, **kwargs: Any) -> Any:
        """`inject_rl.agents.train(self, cfg, ...)`: see there."""
        from inject_rl.agents import _train

        return _train.train(self, cfg, **kwargs)

    def evaluate(self, result: Any, *, episodes: int = 20, seed: int = 0) -> float:
        """Mean return of `episodes` greedy episodes of `result`'s policy on its env."""
        from inject_rl.agents import _train

        return _train.evaluate(self, result, episodes=episodes, seed=seed)


def _is_injectable(hint: Any) -> bool:
    args = set(typing.get_args(hint))
    return hint == Injectable or set(typing.get_args(Injectable)) <= args
