"""Anakin: act and learn as one compiled step, envs vmapped on each device, mapped over devices.

The only module (with its siblings in `inject_rl.loops`) that knows about devices. An agent gives
two pure functions:

* `init(device_index) -> state`: the per-device training state (params identical on every
  device, env keys differing by `device_index`);
* `iteration(state, axis_name) -> (state, metrics)`: one learner iteration on one device; it
  `pmean`s gradients and `inject_rl.signals.sync`s signals over `axis_name`.

`run` compiles `iterations_per_call` iterations as one `lax.scan` and returns the metrics of
every iteration to the host once per call (no per-step host sync). One program path for every
device count (issue 16 item 2): exported programs (`_programs`: `shard_map` over a mesh of the
run's devices, which is what `jax.pmap` itself runs since JAX 0.8), so a named run on any number
of devices can load them next time instead of tracing. States carry a leading `[num_devices]`
axis, split over the devices.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from inject_rl import cache
from inject_rl.loops import _programs
from inject_rl.loops._replicas import local_replicas

# The device axis of every learner's mesh (anakin and sebulba); signals and gradients are
# reduced over it.
DEVICE_AXIS = "device"


class LoopResult(NamedTuple):
    """What `run` returns."""

    state: Any  # final training state, every leaf with a leading [num_devices] axis
    metrics: dict[str, np.ndarray]  # per-iteration metrics of device 0, [num_iterations]
    compile_s: float  # seconds spent tracing, lowering and compiling
    train_s: float  # seconds spent in the compiled calls (compile excluded)
    step_cache_hit: bool  # the training step came from the persistent compilation cache
    programs_loaded: bool = False  # anakin: init and step came from the program cache


def devices_for(num_devices: int | None) -> list[jax.Device]:
    """The first `num_devices` local devices (None: 1).

    Raises:
      ValueError: more devices than available, or fewer than 1.
    """
    available = jax.local_devices()
    n = 1 if num_devices is None else num_devices
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(available):
        raise ValueError(
            f"num_devices must be an integer in [1, {len(available)}] (devices available here), "
            f"got num_devices={num_devices!r}; on a CPU set "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N before importing jax"
        )
    return available[:n]


def replicas_equal(tree: Any) -> bool:
    """Whether every leaf is bitwise-identical across its leading (local) device axis."""
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        x = local_replicas(leaf)
        if not all(np.array_equal(x[0], x[i], equal_nan=True) for i in range(1, x.shape[0])):
            return False
    return True


def unreplicate(tree: Any) -> Any:
    """This process's first replica of a replicated pytree, on the host (typed keys kept).

    Reads one shard per leaf (`local_replicas`), never indexing: safe in a multi-process run."""
    return jax.tree.map(lambda x: local_replicas(x, first_only=True), tree)


def run(
    init: Callable[[jax.Array], Any],
    iteration: Callable[[Any, str], tuple[Any, dict[str, jax.Array]]],
    *,
    num_calls: int,
    iterations_per_call: int,
    num_devices: int | None = None,
    callback: Callable[[int, dict[str, np.ndarray], Any], None] | None = None,
    state: Any = None,
    start_call: int = 0,
    program_key: str | None = None,
) -> LoopResult:
    """Runs `num_calls` compiled calls of `iterations_per_call` iterations each.

    Args:
      init: `device_index -> state`, run once per device.
      iteration: one learner iteration on one device, given the axis name to reduce over.
      num_calls: host calls; the iteration count is `num_calls * iterations_per_call`.
      iterations_per_call: iterations per compiled call (a `lax.scan`).
      num_devices: devices to run on (None: 1).
      callback: `callback(call_index, metrics, state)` after each call; metrics are device
        0's, `state` is replicated and donated to the next call (copy what you keep).
      state: a replicated state to continue from (e.g. a checkpoint) instead of `init`.
      start_call: index of the first call (for callbacks when resuming).
      program_key: a name for this run's programs (see `inject_rl.cache.fingerprint`): a
        later run with the same key and device count loads the exported init and step instead
        of tracing and lowering them. It must identify everything `init` and `iteration`
        depend on; None keeps them in memory only.

    Returns:
      A `LoopResult`.
    """
    devices = devices_for(num_devices)
    cache_dir = cache.enable()  # persistent compilation cache (inject_rl.cache; env var: off)
    t0 = time.perf_counter()

    def call(state):
        return jax.lax.scan(
            lambda s, _: iteration(s, DEVICE_AXIS), state, None, length=iterations_per_call
        )

    n = len(devices)
    path = None
    if program_key is not None and cache_dir is not None:
        # One entry per device count (the programs' shapes and collectives depend on it); the
        # one-device name is the one it had before multi-device runs were cached too.
        name = program_key if n == 1 else f"{program_key}-{n}dev"
        path = Path(cache_dir) / "programs" / f"{name}.jaxprog"
    programs = _programs.build(init, call, DEVICE_AXIS, devices, path)
    layout = programs.layout
    if state is None:
        carry = programs.init(jnp.arange(n, dtype=jnp.int32))
    else:
        carry = programs.put(layout.leaves(state))
    hits = cache.hits()
    step = programs.step.lower(*carry).compile()
    step_cache_hit = cache.hits() > hits
    compile_s = time.perf_counter() - t0
    history: list[dict[str, np.ndarray]] = []
    train_s = 0.0
    for i in range(start_call, num_calls):
        t = time.perf_counter()
        carry, metrics = step(*carry)
        metrics = unreplicate(metrics)  # the one host transfer of the call
        train_s += time.perf_counter() - t
        history.append(metrics)
        if callback is not None:
            callback(i, metrics, layout.state(carry))
    merged = {k: np.concatenate([h[k] for h in history]) for k in history[0]} if history else {}
    return LoopResult(
        layout.state(carry), merged, compile_s, train_s, step_cache_hit, programs.loaded
    )
