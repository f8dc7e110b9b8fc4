"""`--resume --steps N`: whether a run can be extended to a new total of env steps.

A run of M steps extended to N continues from its last checkpoint with the program built for N.
That equals the N-step run from the start only when the learner's program does not depend on
the total: the agent's config may derive values from it (dqn's default epsilon decays linearly
over `epsilon_fraction` of the total iterations), and so may a user's agent or optimizer. Rather
than trusting a list of such fields, the programs are compared: one learner iteration is traced
for both totals (a fraction of a second; nothing is compiled) and its jaxprs, constants
included, must be equal. On the anakin loop equal programs continued from the same state give
the N-step run bit for bit; on host envs the learner continues the same way, but the envs
restart from fresh resets (as after any --resume), so the rollouts differ from an
uninterrupted run.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inject_rl import loops
from inject_rl.agents._train import learner as agent_learner
from inject_rl.cli._build import Built


def _leaf_bytes(x: Any) -> bytes:
    x = jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    x = np.asarray(x)
    return f"{x.dtype}{x.shape}".encode() + x.tobytes()


def _fingerprint(fn: Any, *args: Any) -> tuple[str, list[bytes]]:
    """The jaxpr of `fn(*args)` (abstract args) as text, and its constants' bytes."""
    closed = jax.make_jaxpr(fn)(*args)
    return str(closed.jaxpr), [_leaf_bytes(c) for c in closed.consts]


def _rollout(env: Any, act: Any, view: Any, num_envs: int, rollout_len: int) -> Any:
    """An abstract `HostRollout` of `num_envs` envs, as the sebulba loop hands `learn`."""
    obs = jax.ShapeDtypeStruct((num_envs, *env.obs_shape), jnp.float32)
    action, extras = jax.eval_shape(act, view, obs, jax.random.key(0))

    def lead(s, shape=(rollout_len,)):
        return jax.ShapeDtypeStruct((*shape, *s.shape), s.dtype)

    t = (rollout_len, num_envs)
    flags = jax.ShapeDtypeStruct(t, jnp.bool_)
    traj = loops.Transition(
        lead(obs),
        lead(action),
        jax.ShapeDtypeStruct(t, jnp.float32),
        flags,
        flags,
        lead(obs),
        jax.tree.map(lead, extras),
    )
    return loops.HostRollout(
        traj, obs, jax.ShapeDtypeStruct(t, jnp.float32), jax.ShapeDtypeStruct(t, jnp.int32)
    )


def programs(built: Built) -> dict[str, tuple[str, list[bytes]]]:
    """The traced learner programs of a built run, by name (one device's, no axis)."""
    loop, learner = agent_learner(
        built.agent, built.cfg, built.optimizer, built.num_devices, env=built.env
    )
    state = jax.eval_shape(learner.init, jnp.zeros((), jnp.int32))
    if loop == "anakin":
        return {"iteration": _fingerprint(lambda s: learner.iteration(s, None), state)}
    view = jax.eval_shape(learner.actor_params, state)
    num_envs = built.cfg.num_envs // built.num_devices
    obs = jax.ShapeDtypeStruct((num_envs, *built.env.obs_shape), jnp.float32)
    rollout = _rollout(built.env, learner.act, view, num_envs, learner.rollout_len)
    return {
        "act": _fingerprint(learner.act, view, obs, jax.random.key(0)),
        "actor params": _fingerprint(learner.actor_params, state),
        "learner step": _fingerprint(lambda s, r: learner.learn(s, r, None), state, rollout),
    }


def check_extension(built: Built, before: Built) -> None:
    """Refuses to extend the run `before` (its total of env steps) to `built`'s total when the
    learner's programs differ between the two totals.

    Raises:
      ValueError: the programs differ (one line, saying what to do instead).
    """
    new, old = programs(built), programs(before)
    differ = [name for name in new if new[name] != old.get(name)]
    if not differ:
        return
    n, m = built.cfg.total_steps, before.cfg.total_steps
    raise ValueError(
        f"--resume --steps {n}: {built.agent.name}'s {' and '.join(differ)} for {n} env steps "
        f"differs from the one for the run's {m}: its config derives values from the total "
        "(dqn: the default epsilon decays over epsilon_fraction of it), so the extended run "
        f"would not be a {n}-step run; train a new run with --steps {n}, or give such "
        "hyperparameters explicitly when starting (dqn: --hp epsilon='...')"
    )
