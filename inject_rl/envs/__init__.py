"""Gymnasium environments for the actor-learner loops.

In-graph (anakin): gymnasium's functional JAX envs (`phys2d/*`) as pure, jittable `reset` /
`step` with an in-graph time limit and autoreset, built by `make`.

On the host (sebulba): any gymnasium id (or "module:Env-v0", as `gymnasium.make` takes) as a
`HostEnv`, a vector env with same-step autoreset and episode statistics, returning the same
fields as `JaxEnv.step` as numpy arrays, its observations preprocessed into network inputs by
`ObsPreprocessor` (images kept, everything else flattened as `gymnasium.spaces.flatten` does).
"""

from inject_rl.envs._host import HostEnv, HostTimeStep, host_spaces
from inject_rl.envs._jax_env import JaxEnv
from inject_rl.envs._make import is_jax_env, jax_env_ids, make
from inject_rl.envs._spaces import (
    ACTION_KIND_NAMES,
    ACTION_SPACES,
    CONTINUOUS,
    DISCRETE,
    MULTI_DISCRETE,
    OBSERVATION_SPACES,
    UNBOUNDED,
    ObsPreprocessor,
    action_kind,
    spec,
)
from inject_rl.envs._types import EnvState, TimeStep

__all__ = [
    "ACTION_KIND_NAMES",
    "ACTION_SPACES",
    "CONTINUOUS",
    "DISCRETE",
    "MULTI_DISCRETE",
    "OBSERVATION_SPACES",
    "UNBOUNDED",
    "EnvState",
    "HostEnv",
    "HostTimeStep",
    "JaxEnv",
    "ObsPreprocessor",
    "TimeStep",
    "action_kind",
    "host_spaces",
    "is_jax_env",
    "jax_env_ids",
    "make",
    "spec",
]
