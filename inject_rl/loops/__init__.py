"""Actor-learner loops; the only package that knows about devices.

Anakin (`run`): in-graph envs, act and learn as one compiled step. Sebulba (`run_sebulba`): host
envs on actor threads, a learner on every device. Both map over devices with `shard_map` on a
mesh of them (what `jax.pmap` itself runs since JAX 0.8). Multi-process: `init_distributed`
(gloo on CPU), then the same loops over all processes' devices.
"""

from inject_rl.loops._anakin import (
    DEVICE_AXIS,
    LoopResult,
    devices_for,
    replicas_equal,
    run,
    unreplicate,
)
from inject_rl.loops._collectives import pmean
from inject_rl.loops._distributed import (
    ProcessResult,
    agreed,
    free_port,
    init_distributed,
    init_distributed_from_env,
    launch_processes,
)
from inject_rl.loops._host_eval import (
    UnfinishedEvaluation,
    evaluate_host_policy,
    evaluate_host_policy_returns,
)
from inject_rl.loops._packed import packed_scan
from inject_rl.loops._replay import ReplayBuffer, ReplayBufferState
from inject_rl.loops._replicas import local_replicas
from inject_rl.loops._rollout import (
    ActorState,
    Policy,
    Transition,
    env_step,
    evaluate_policy,
    evaluate_policy_returns,
    init_actor,
    rollout,
)
from inject_rl.loops._sebulba import (
    first_replica,
    learner_devices,
    run_sebulba,
)
from inject_rl.loops._sebulba_actor import HostRollout, host_episode_summary
from inject_rl.loops._vectorized import run_batched, stack

__all__ = [
    "DEVICE_AXIS",
    "ActorState",
    "HostRollout",
    "LoopResult",
    "Policy",
    "ProcessResult",
    "ReplayBuffer",
    "ReplayBufferState",
    "Transition",
    "UnfinishedEvaluation",
    "agreed",
    "devices_for",
    "env_step",
    "evaluate_host_policy",
    "evaluate_host_policy_returns",
    "evaluate_policy",
    "evaluate_policy_returns",
    "first_replica",
    "free_port",
    "host_episode_summary",
    "init_actor",
    "init_distributed",
    "init_distributed_from_env",
    "launch_processes",
    "learner_devices",
    "local_replicas",
    "packed_scan",
    "pmean",
    "replicas_equal",
    "rollout",
    "run",
    "run_batched",
    "run_sebulba",
    "stack",
    "unreplicate",
]
