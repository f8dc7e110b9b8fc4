"""Multi-process runs: `jax.distributed` with gloo CPU collectives, and a local launcher.

The loops need nothing else: once every process has called `init_distributed`, `jax.devices()`
lists all processes' devices, the learner's collectives over a mesh of them join the processes,
and `run_sebulba` feeds each process's local devices from that process's own actors. No home-made
transport: parameters never travel between processes, only gradients and signals in collectives.

On CPU, give each process fake devices with `XLA_FLAGS=--xla_force_host_platform_device_count=N`
in its environment before jax is imported (`launch_processes` does): 2 processes x 2 devices
are 4 global devices for the learner.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax

# Environment variables through which `launch_processes` tells each child its place.
ENV_COORDINATOR = "INJECT_RL_COORDINATOR"  # "host:port" of process 0's coordination service
ENV_NUM_PROCESSES = "INJECT_RL_NUM_PROCESSES"
ENV_PROCESS_ID = "INJECT_RL_PROCESS_ID"


def init_distributed(
    coordinator_address: str, num_processes: int, process_id: int, *, timeout_s: int = 120
) -> None:
    """Joins this process to a multi-process run (call before any other JAX work).

    Sets `jax_cpu_collectives_implementation` to "gloo" (without it, cross-process collectives
    on the CPU backend are not implemented), then `jax.distributed.initialize`.

    Args:
      coordinator_address: "host:port" where process 0 serves the coordination service.
      num_processes: processes in the run.
      process_id: this process's index in `[0, num_processes)`.
      timeout_s: how long to wait for every process to join.

    Raises:
      ValueError: bad `num_processes` / `process_id`.
    """
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be an integer >= 1, got {num_processes=!r}")
    if (
        isinstance(process_id, bool)
        or not isinstance(process_id, int)
        or not (0 <= process_id < num_processes)
    ):
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id=!r}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_s,
    )


def init_distributed_from_env() -> bool:
    """`init_distributed` from the variables `launch_processes` sets; False when they are
    absent (a single-process run), True once joined."""
    if ENV_COORDINATOR not in os.environ:
        return False
    init_distributed(
        os.environ[ENV_COORDINATOR],
        int(os.environ[ENV_NUM_PROCESSES]),
        int(os.environ[ENV_PROCESS_ID]),
    )
    return True


def agreed(value: int) -> int:
    """What every process of a run decides together: the first non-zero `value` in process
    order, or 0 (one process: `value` itself). Every process must call it at the same point; a
    decision one process takes alone (to stop, to refuse) leaves the others waiting in their
    next collective for ever.

    >>> agreed(0), agreed(15)
    (0, 15)
    """
    if jax.process_count() == 1:
        return int(value)
    import numpy as np
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(np.int32(value)))
    return next((int(v) for v in every.ravel() if v), 0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessResult(NamedTuple):
    """How one launched process ended."""

    returncode: int  # negative: killed by that signal (e.g. by the launcher after a failure)
    output: str  # its stdout and stderr, interleaved


def launch_processes(
    argv: Sequence[str],
    *,
    num_processes: int,
    devices_per_process: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
    grace_s: float = 10.0,
) -> list[ProcessResult]:
    """Runs `argv` as `num_processes` processes on 127.0.0.1 joined by `jax.distributed`.

    Each child finds its place in `INJECT_RL_COORDINATOR` / `_NUM_PROCESSES` / `_PROCESS_ID`
    (call `init_distributed_from_env()` first thing). When one child fails, the others, which
    would otherwise wait in a collective for it, are killed after `grace_s`.

    Args:
      argv: the command, e.g. `[sys.executable, "worker.py"]`.
      num_processes: processes to start.
      devices_per_process: fake CPU devices per process (sets XLA_FLAGS); None leaves it.
      env: the children's environment (default: this process's).
      timeout_s: overall limit; children still running then are killed.
      grace_s: seconds the others get after one child fails.

    Returns:
      A `ProcessResult` per process, in process order.
    """
    port = free_port()
    base = dict(os.environ if env is None else env)
    if devices_per_process is not None:
        flags = [
            f
            for f in base.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        ]
        flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
        base["XLA_FLAGS"] = " ".join(flags)
    procs, logs = [], []
    for pid in range(num_processes):
        child = {
            **base,
            ENV_COORDINATOR: f"127.0.0.1:{port}",
            ENV_NUM_PROCESSES: str(num_processes),
            ENV_PROCESS_ID: str(pid),
        }
        log = tempfile.TemporaryFile(mode="w+")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                list(argv),
                env=child,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + timeout_s
    failed_at = None
    try:
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
                failed_at = now
            if now > deadline or (failed_at is not None and now > failed_at + grace_s):
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    results = []
    for p, log in zip(procs, logs, strict=True):
        log.seek(0)
        results.append(ProcessResult(p.returncode, log.read()))
        log.close()
    return results
