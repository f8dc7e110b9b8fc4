"""Signal-driven schedules implementing `optax.schedules.StatefulSchedule`.

Each works with unmodified `optax.inject_hyperparams` for any numeric hyperparameter, reads one
training signal by name from the `extra_args` given to `update`, and ignores every other key.

Numeric constants (initial values, bounds, factors...) may be floats or 0-d arrays, tracers
included: they live in the schedule's state, so `jax.vmap` over an initial learning rate gives
one rate per member. Concrete values are validated like floats; a tracer cannot be read and is
not range-checked. Integer counts (`every`, `patience`, `steps`...) are Python ints.
"""

from inject_rl.schedules._bandit import Bandit, BanditState, bandit
from inject_rl.schedules._combinators import Clip, ClipState, Warmup, WarmupState, clip, warmup
from inject_rl.schedules._common import EPISODE_SIGNALS, MissingSignalError, Window
from inject_rl.schedules._constant import (
    Constant,
    ConstantState,
    FromStepSchedule,
    StepState,
    constant,
    from_step_schedule,
)
from inject_rl.schedules._hypergradient import Hypergradient, HypergradientState, hypergradient
from inject_rl.schedules._kl_target import KLTarget, KLTargetState, kl_target
from inject_rl.schedules._plateau import Plateau, PlateauState, plateau
from inject_rl.schedules._progress import Progress, ProgressState, progress
from inject_rl.schedules._spec import SCHEDULES, STEP_SCHEDULES, parse, signature, to_spec
from inject_rl.schedules._spike_guard import SpikeGuard, SpikeGuardState, spike_guard

__all__ = [
    "EPISODE_SIGNALS",
    "SCHEDULES",
    "STEP_SCHEDULES",
    "Bandit",
    "BanditState",
    "Clip",
    "ClipState",
    "Constant",
    "ConstantState",
    "FromStepSchedule",
    "Hypergradient",
    "HypergradientState",
    "KLTarget",
    "KLTargetState",
    "MissingSignalError",
    "Plateau",
    "PlateauState",
    "Progress",
    "ProgressState",
    "SpikeGuard",
    "SpikeGuardState",
    "StepState",
    "Warmup",
    "WarmupState",
    "Window",
    "bandit",
    "clip",
    "constant",
    "from_step_schedule",
    "hypergradient",
    "kl_target",
    "parse",
    "plateau",
    "progress",
    "signature",
    "spike_guard",
    "to_spec",
    "warmup",
]
