"""Gymnasium environments for the actor-learner loops.

In-graph (anakin): gymnasium's functional JAX envs (`phys2d/*`) as pure, jittable `reset` /
`step` with an in-graph time limit and autoreset, built by `make`.

On the host (sebulba): any gymnasium id (or "module:Env-v0", as `gymnasium.make` takes) as a
`HostEnv`, a vector env with same-step autoreset and episode statistics, returning the same
fields as `JaxEnv.step` as numpy arrays, its observations preprocessed into network inputs by
`ObsPreprocessor` (images kept, everything else flattened as `gymnasium.spaces.flatten` does).
`host_env` picks the backend: gymnasium's "sync" or "async" vector env, or for an
`envpool/<TaskId>` id envpool's C++ vector env (`EnvpoolEnv`, same interface and same-step
autoreset; `pip install 'inject-rl[envpool]'`).
"""

from inject_rl.envs._envpool import ENVPOOL_EXTRA, EnvpoolEnv
from inject_rl.envs._host import (
    ENVPOOL_PREFIX,
    VECTORIZATIONS,
    HostEnv,
    HostSpaces,
    HostTimeStep,
    check_vectorization,
    host_env,
    host_spaces,
    is_envpool_id,
)
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
    "ENVPOOL_EXTRA",
    "ENVPOOL_PREFIX",
    "MULTI_DISCRETE",
    "OBSERVATION_SPACES",
    "UNBOUNDED",
    "VECTORIZATIONS",
    "EnvState",
    "EnvpoolEnv",
    "HostEnv",
    "HostSpaces",
    "HostTimeStep",
    "JaxEnv",
    "ObsPreprocessor",
    "TimeStep",
    "action_kind",
    "check_vectorization",
    "host_env",
    "host_spaces",
    "is_envpool_id",
    "is_jax_env",
    "jax_env_ids",
    "make",
    "spec",
]
