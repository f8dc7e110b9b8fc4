"""Actor-learner loops; the only package that knows about devices."""

from inject_rl.loops._anakin import (
    DEVICE_AXIS,
    LoopResult,
    devices_for,
    replicas_equal,
    run,
    unreplicate,
)
from inject_rl.loops._replay import ReplayBuffer, ReplayBufferState
from inject_rl.loops._rollout import (
    ActorState,
    Policy,
    Transition,
    env_step,
    evaluate_policy,
    init_actor,
    rollout,
)

__all__ = [
    "DEVICE_AXIS",
    "ActorState",
    "LoopResult",
    "Policy",
    "ReplayBuffer",
    "ReplayBufferState",
    "Transition",
    "devices_for",
    "env_step",
    "evaluate_policy",
    "init_actor",
    "replicas_equal",
    "rollout",
    "run",
    "unreplicate",
]
