"""Gymnasium environments for the actor-learner loops.

In-graph (anakin): gymnasium's functional JAX envs (`phys2d/*`) as pure, jittable `reset` /
`step` with an in-graph time limit and autoreset, built by `make`.

On the host (sebulba): any gymnasium id as a `HostEnv`, a vector env with same-step autoreset
and episode statistics, returning the same fields as `JaxEnv.step` as numpy arrays.
"""

from inject_rl.envs._host import HostEnv, HostTimeStep, host_spaces
from inject_rl.envs._jax_env import JaxEnv
from inject_rl.envs._make import is_jax_env, jax_env_ids, make
from inject_rl.envs._types import EnvState, TimeStep

__all__ = [
    "EnvState",
    "HostEnv",
    "HostTimeStep",
    "JaxEnv",
    "TimeStep",
    "host_spaces",
    "is_jax_env",
    "jax_env_ids",
    "make",
]
