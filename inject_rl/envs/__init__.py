"""Gymnasium environments for the actor-learner loops.

In-graph (anakin): gymnasium's functional JAX envs (`phys2d/*`) as pure, jittable `reset` /
`step` with an in-graph time limit and autoreset, built by `make`.
"""

from inject_rl.envs._jax_env import JaxEnv
from inject_rl.envs._make import is_jax_env, jax_env_ids, make
from inject_rl.envs._types import EnvState, TimeStep

__all__ = [
    "EnvState",
    "JaxEnv",
    "TimeStep",
    "is_jax_env",
    "jax_env_ids",
    "make",
]
