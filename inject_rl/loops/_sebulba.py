"""Sebulba: host envs stepped on actor threads, a learner mapped over devices, overlapped.

Podracer's sebulba layout (Hessel et al. 2021, "Podracer architectures for scalable RL"), as in
cleanba: each actor thread steps its own host env (`inject_rl.envs.host_env`: gymnasium's sync or
async vector env, or envpool's for an `envpool/*` id; all same-step) with a jitted `act`, stacks
`rollout_len` steps into a `HostRollout` and puts it in its bounded `queue.Queue`; the main
thread takes rollout `i` from every actor, splits it over the learner devices along the env axis
and runs `learn` on every device (`shard_map` over a mesh of the learner devices, as the anakin
loop does; what `jax.pmap` itself runs since JAX 0.8), which reduces gradients and signals over
`DEVICE_AXIS`. An agent gives three pure functions:

* `init(device_index) -> state`: the per-device learner state, run on every learner device;
* `act(params, obs, key) -> (action, extras)`: one step of a batch of envs, jitted on the actor
  device; `params` is `params_of(state)` of one replica;
* `learn(state, rollout, axis_name) -> (state, metrics)`: one learner iteration on one device.

**Staleness, and why the loop is deterministic.** Rollout `i` is always collected with the
params after exactly `max(0, i - staleness)` learner iterations: with `staleness=1` the actors
collect rollout `i` while the learner trains on rollout `i - 1` (acting and learning overlap,
the actor's params are one update stale: IMPALA's V-trace corrects for that); `staleness=0` is
the synchronous mode, where the actors wait for each update (on-policy PPO). Because the lag is
fixed rather than "whatever is newest", env seeds and action keys fix every rollout and the run
is reproducible given the seed, with any number of actor threads.

**Multi-process.** After `inject_rl.loops.init_distributed`, the learner's mesh holds all
global devices (`jax.devices()`); each process runs actors for its share of the envs and feeds
its local devices (its rows of the global arrays); the collectives join the processes (gloo on
CPU). Callbacks and the result get this process's replicas, `[local_devices, ...]`, as `pmap`
gave them.

**Failures.** An exception in an actor thread stops the run: the main thread re-raises it within
a fraction of a second. Any exit of `run_sebulba` (error, KeyboardInterrupt, a raising callback)
stops and joins the actor threads and closes the envs.

**Resume.** Host env states cannot be checkpointed: resuming from `state` continues the learner
bitwise, but the envs restart from fresh episodes (seeded by the seed and `start_call`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from inject_rl import cache
from inject_rl.envs import HostSpaces, check_vectorization, host_env
from inject_rl.loops._anakin import DEVICE_AXIS, LoopResult
from inject_rl.loops._replicas import local_replicas
from inject_rl.loops._rollout import Transition
from inject_rl.loops._sebulba_actor import (
    Actor,
    HostRollout,
    ParamVersions,
    Stopped,
    actor_error,
)

# Salt separating actor keys from the learner's `jax.random.key(seed)` stream.
_ACTOR_SALT = 0x5EB0


def first_replica(tree: Any) -> Any:
    """This process's first replica of a replicated pytree, on the host (typed keys kept).

    Reads the shard (`local_replicas`) instead of indexing: in a multi-process run, `x[0]` on a
    global array is a computation over the devices (a gloo collective on CPU), which this avoids.
    """
    return jax.tree.map(lambda x: local_replicas(x, first_only=True), tree)


def _on_mesh(fn: Callable, mesh: Mesh, donate: tuple[int, ...] = ()) -> Callable:
    """`fn` on every device of `mesh`, jitted: each device gets its row of every argument (the
    leading axis dropped) and its results get a leading axis back, so collectives over the
    mesh's axis work inside. Exactly what `jax.pmap` builds (squeeze, `shard_map`,
    expand_dims, every argument and result split along that axis), without its per-call
    argument handling. `donate`: the positions of arguments whose buffers the call may reuse
    (`jax.jit`'s `donate_argnums`)."""
    (axis,) = mesh.axis_names

    def per_device(*args):
        out = fn(*jax.tree.map(lambda x: jax.lax.squeeze(x, [0]), args))
        return jax.tree.map(lambda x: jax.lax.expand_dims(x, [0]), out)

    split = NamedSharding(mesh, P(axis))
    mapped = jax.shard_map(
        per_device, mesh=mesh, in_specs=P(axis), out_specs=P(axis), check_vma=False
    )
    return jax.jit(mapped, in_shardings=split, out_shardings=split, donate_argnums=donate)


@jax.jit
def _copy(tree: Any) -> Any:
    """A copy of every array in new buffers, its sharding kept: one program for the whole tree
    (not one compile per leaf shape), which every process runs on its shards."""
    return jax.tree.map(jnp.copy, tree)


def _host_copy(tree: Any) -> Any:
    """Every numpy leaf copied (`first_replica` may return views of device buffers)."""
    return jax.tree.map(lambda x: np.array(x) if isinstance(x, np.ndarray) else x, tree)


def _global(tree: Any, mesh: Mesh) -> Any:
    """This process's rows `[local_devices, ...]` (host or device arrays, typed keys) as arrays
    over the whole mesh; arrays already over it pass through."""
    return multihost_utils.host_local_array_to_global_array(tree, mesh, P(*mesh.axis_names))


def _local(tree: Any, mesh: Mesh) -> Any:
    """The inverse of `_global` in a multi-process run (this process's rows, as `pmap` returned
    them); on one process the global arrays are already all local."""
    if jax.process_count() == 1:
        return tree
    return multihost_utils.global_array_to_host_local_array(tree, mesh, P(*mesh.axis_names))


def learner_devices(num_devices: int | None) -> list[jax.Device]:
    """The learner devices: all global devices in a multi-process run, else `devices_for`.

    Raises:
      ValueError: a bad count, or a count other than all devices in a multi-process run.
    """
    if jax.process_count() > 1:
        if num_devices not in (None, jax.device_count()):
            raise ValueError(
                f"in a multi-process run the learner uses all {jax.device_count()} global "
                f"devices; got num_devices={num_devices!r}"
            )
        return jax.devices()
    from inject_rl.loops._anakin import devices_for

    return devices_for(num_devices)


def _split_for_devices(pieces: list[HostRollout], num_local: int) -> HostRollout:
    """Concatenates the actors' pieces along the env axis, then splits it over local devices:
    `[T, B] -> [D, T, B / D]` and `[B] -> [D, B / D]`."""

    def per_device(time_major: bool):
        def f(*xs):
            x = np.concatenate(xs, axis=1 if time_major else 0)
            if not time_major:
                return x.reshape((num_local, -1, *x.shape[1:]))
            x = x.reshape((x.shape[0], num_local, -1, *x.shape[2:]))
            return np.swapaxes(x, 0, 1)

        return f

    return HostRollout(
        jax.tree.map(per_device(True), *[p.traj for p in pieces]),
        per_device(False)(*[p.last_obs for p in pieces]),
        per_device(True)(*[p.episode_return for p in pieces]),
        per_device(True)(*[p.episode_length for p in pieces]),
    )


def _example_rollout(env: HostSpaces, act, params, num_envs: int, rollout_len: int) -> HostRollout:
    """Zeros shaped like one actor's rollout of `num_envs` envs (for the warm-up compile)."""
    obs = jax.ShapeDtypeStruct((num_envs, *env.obs_shape), jnp.float32)
    action, extras = jax.eval_shape(act, params, obs, jax.random.key(0))

    def zeros(s, lead=(rollout_len,)):
        return np.zeros((*lead, *s.shape), s.dtype)

    t = (rollout_len, num_envs)
    traj = Transition(
        zeros(obs),
        zeros(action),
        np.zeros(t, np.float32),
        np.zeros(t, bool),
        np.zeros(t, bool),
        zeros(obs),
        jax.tree.map(zeros, extras),
    )
    return HostRollout(traj, zeros(obs, ()), np.zeros(t, np.float32), np.zeros(t, np.int32))


def run_sebulba(
    init: Callable[[jax.Array], Any],
    act: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]],
    learn: Callable[[Any, HostRollout, str], tuple[Any, dict[str, jax.Array]]],
    *,
    env_id: str,
    num_envs: int,
    rollout_len: int,
    num_calls: int,
    iterations_per_call: int,
    seed: int,
    params_of: Callable[[Any], Any] = lambda state: state.params,
    staleness: int = 1,
    num_actor_threads: int = 1,
    num_devices: int | None = None,
    actor_device: jax.Device | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vectorization: str = "sync",
    callback: Callable[[int, dict[str, np.ndarray], Any], None] | None = None,
    state: Any = None,
    start_call: int = 0,
) -> LoopResult:
    """Trains with host envs on actor threads and a learner on every device (see the module doc).

    Args:
      init: `device_index -> state`, run on every learner device.
      act: `(params, obs [B, *obs], key) -> (action [B, ...], extras)`, jitted on
        `actor_device`; extras (e.g. behaviour `log_prob`) land in `rollout.traj.extras`.
      learn: one learner iteration on one device, given its share of the rollout
        (`[T, num_envs / num_devices]`) and the axis name to reduce over.
      env_id: a gymnasium id, or "envpool/<TaskId>" (see `inject_rl.envs.host_env`).
      num_envs: envs in total (all processes), split evenly over processes and actor threads,
        then over each process's learner devices.
      rollout_len: steps per env per iteration.
      num_calls: host calls; iterations are `num_calls * iterations_per_call`.
      iterations_per_call: iterations between metric fetches and callbacks.
      seed: fixes env seeds and actor keys (the learner's keys come from `init`).
      params_of: the part of a state the actor needs (`state.params`); any pytree of arrays,
        computed from one replica.
      staleness: rollout `i` uses the params after `max(0, i - staleness)` iterations; 0 is
        synchronous (on-policy), 1 overlaps acting with learning.
      num_actor_threads: actor threads per process, each with its own envs.
      num_devices: learner devices (None: 1; all global devices in a multi-process run).
      actor_device: where `act` runs (None: the first local learner device).
      env_kwargs: passed to every env's constructor (or to `envpool.make`).
      vectorization: each actor's gymnasium vector env, "sync" (its envs stepped in turn) or
        "async" (a subprocess per env: the same transitions, worth it for slow envs on spare
        cores); an envpool id takes only "sync" (`inject_rl.envs.host_env`).
      callback: `callback(call_index, metrics, state)` after every call; metrics are device
        0's (plus `learner_wait_s`, the seconds the learner waited for rollouts), `state` is
        replicated and donated to the next call (copy what you keep).
      state: a replicated learner state to continue from instead of `init` (copied, never
        donated: it may serve again).
      start_call: index of the first call (when resuming).

    Returns:
      A `LoopResult`; `compile_s` includes one warm-up learner call on zeros.

    Raises:
      ValueError: bad sizes, device counts or vectorization.
      Exception: whatever an actor thread raised, re-raised here.
    """
    for name, v, low in (
        ("num_envs", num_envs, 1),
        ("rollout_len", rollout_len, 1),
        ("num_calls", num_calls, 1),
        ("iterations_per_call", iterations_per_call, 1),
        ("staleness", staleness, 0),
        ("num_actor_threads", num_actor_threads, 1),
        ("start_call", start_call, 0),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"sebulba: {name} must be an integer >= {low}, got {name}={v!r}")
    check_vectorization(env_id, vectorization)
    devices = learner_devices(num_devices)
    local = [d for d in devices if d.process_index == jax.process_index()]
    num_processes = jax.process_count()
    per_process = num_envs // num_processes
    if num_envs % (len(devices)) or per_process % num_actor_threads:
        raise ValueError(
            f"sebulba: num_envs must be divisible by the learner devices ({len(devices)}) and "
            f"its per-process share by num_actor_threads ({num_actor_threads}), got "
            f"{num_envs=}"
        )
    per_thread = per_process // num_actor_threads
    actor_device = local[0] if actor_device is None else actor_device
    first, last = start_call * iterations_per_call, num_calls * iterations_per_call
    base_seed = int(np.random.SeedSequence([seed, start_call]).generate_state(1)[0])
    actor_key = jax.random.fold_in(jax.random.key(seed), _ACTOR_SALT)

    cache.enable()  # persistent compilation cache (inject_rl.cache; off with the env var)
    hits = cache.hits()
    t0 = time.perf_counter()
    stop = threading.Event()
    env_list: list[Any] = []
    actors: list[Actor] = []
    try:
        for _ in range(num_actor_threads):
            env_list.append(
                host_env(env_id, per_thread, vectorization=vectorization, **(env_kwargs or {}))
            )
        mesh = Mesh(devices, (DEVICE_AXIS,))
        if state is None:
            first_index = jax.process_index() * len(local)
            index = np.arange(first_index, first_index + len(local), dtype=np.int32)
            state = _on_mesh(init, mesh)(_global(index, mesh))
        else:  # a copy: the learner donates its state, and the caller's may serve again
            state = _copy(_global(state, mesh))
        # The state is donated: a replay buffer in it is updated in place. Without that every
        # call wrote a new copy of the whole buffer (a 1e5-transition replay of 10x10x4 frames
        # made DQN 8x slower than a 1e4 one; issue 13).
        learner = _on_mesh(lambda s, r: learn(s, r, DEVICE_AXIS), mesh, donate=(0,))
        params0 = params_of(first_replica(state))

        def act_step(params, obs, key):
            key, k_act = jax.random.split(key)
            action, extras = act(params, obs, k_act)
            return action, extras, key

        example = _example_rollout(env_list[0], act, params0, per_thread, rollout_len)
        act_step = jax.jit(act_step)
        jax.block_until_ready(
            act_step(jax.device_put(params0, actor_device), example.last_obs, actor_key)
        )
        warm = _split_for_devices([example] * num_actor_threads, len(local))
        # Compiles; a copy is donated and the output discarded.
        jax.block_until_ready(learner(_copy(state), _global(warm, mesh)))
        compile_s = time.perf_counter() - t0
        step_cache_hit = cache.hits() > hits

        versions = ParamVersions(keep=staleness + 1)
        versions.publish(first, _host_copy(params0))
        for j, env in enumerate(env_list):
            g = jax.process_index() * num_actor_threads + j  # global actor index
            actors.append(
                Actor(
                    j,
                    env,
                    act_step,
                    versions,
                    stop,
                    key=jax.random.fold_in(actor_key, g),
                    seed=(base_seed + g * per_thread) % 2**31,
                    rollout_len=rollout_len,
                    staleness=staleness,
                    first=first,
                    last=last,
                    device=actor_device,
                    maxsize=max(1, staleness),
                )
            )
        for a in actors:
            a.thread.start()

        t_start = time.perf_counter()
        history: list[dict[str, np.ndarray]] = []
        pending: list[tuple[dict[str, jax.Array], float]] = []
        for i in range(first, last):
            t = time.perf_counter()
            try:
                pieces = [a.take() for a in actors]
            except Stopped:
                raise actor_error(actors) from None
            waited = time.perf_counter() - t
            state, metrics = learner(state, _global(_split_for_devices(pieces, len(local)), mesh))
            # Host copies: the actors read them while the next call reuses the state's buffers.
            versions.publish(i + 1, _host_copy(params_of(first_replica(state))))
            pending.append((first_replica(metrics), waited))
            if (i + 1) % iterations_per_call == 0:
                fetched = jax.device_get([m for m, _ in pending])
                call = {k: np.stack([m[k] for m in fetched]) for k in fetched[0]}
                call["learner_wait_s"] = np.array([w for _, w in pending])
                pending.clear()
                history.append(call)
                if callback is not None:
                    callback(i // iterations_per_call, call, _local(state, mesh))
        jax.block_until_ready(state)
        train_s = time.perf_counter() - t_start
    finally:
        stop.set()
        for a in actors:
            a.thread.join(timeout=10.0)
        for env in env_list:
            env.close()
    merged = {k: np.concatenate([h[k] for h in history]) for k in history[0]} if history else {}
    return LoopResult(_local(state, mesh), merged, compile_s, train_s, step_cache_hit)
