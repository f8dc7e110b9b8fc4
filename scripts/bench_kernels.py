"""Per-kernel times of one optimizer update in a scan, read from a profiler trace, side by side.

`bench_overhead.py` says how much longer an update of the injected optimizer takes than plain
Adam's and how many kernels each launches; this script says where the time goes. It runs
bench_overhead's variants (plain `optax.adam`, `inject_hyperparams(adam)` with two schedules,
the same with constants, `optim.packed` of the scheduled one) for `--steps` updates in
`packed_scan` and in `lax.scan`, each call under `jax.profiler.trace`, and reads the
kernels back from the trace (`jax.profiler.ProfileData`): on a GPU the kernels of the device's
streams (CUPTI), on the CPU XLA's thunks (`--xla_cpu_enable_xprof_traceme`, set below before
jax is imported). Per update it prints the kernels launched, their summed time, the call's wall
time, and the wall time not covered by any kernel (launch gaps, host work; on the CPU the
two XLA threads overlap, so summed kernel time can exceed the wall time); then, per variant, the
kernels that cost the most. The figures are for a GPU, where CUPTI times each kernel on the
device. On the CPU a thunk's traced time includes the thread pool's dispatch and the tracer's
own cost (Adam's update of a 64x64 weight shows as 1.0-1.5 us, against 0.25 us for the same
fusion timed untraced in a scan of 10,000 steps), so there the script only shows that it runs
and which kernels there are.

Why (issue 16): on one H100 the scheduled and the constant injected optimizers took 1.32-1.40x
plain Adam's time in `packed_scan` although each launched 8 kernels per update, as plain Adam
did: the difference is not the number of kernels, and this script is there to show what it is.

    python scripts/bench_kernels.py [--steps 2000] [--reps 3] [--top 6]

Each row is the median of `--reps` traced calls, the variants alternated, after one untraced
warm-up trace (a process's first trace pays the profiler's start).
"""

from __future__ import annotations

import os

if "xla_cpu_enable_xprof_traceme" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
    ).strip()

import argparse  # noqa: E402
import collections  # noqa: E402
import glob  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from bench_overhead import build, mlp_params, variants  # noqa: E402

# CPU thunk-trace events that are not kernels: the executor's and thread pool's own spans, and
# the control-flow thunks that span the kernels they run.
_NOT_KERNELS = ("ThreadpoolListener", "ThunkExecutor", "end: ", "while", "conditional", "call")


def kernel_events(path: str) -> list[tuple[str, int, int]]:
    """`(name, start_ns, end_ns)` of every kernel in an xplane trace: the events of a GPU's
    stream lines, else (CPU) the events of XLA's client threads that name a thunk."""
    data = jax.profiler.ProfileData.from_file(path)
    planes = list(data.planes)
    gpu = [p for p in planes if p.name.startswith("/device:GPU")]
    events = []
    if gpu:
        for plane in gpu:
            for line in plane.lines:
                if line.name.startswith("Stream"):
                    events += [(e.name, e.start_ns, e.end_ns) for e in line.events]
        if not events:  # a trace laid out otherwise: say how, rather than print zeros
            names = sorted({f"{p.name}: {line.name}" for p in gpu for line in p.lines})
            raise SystemExit(f"no 'Stream' lines in the GPU planes of the trace; lines: {names}")
        return events
    for plane in planes:
        for line in plane.lines:
            if line.name.startswith("tf_XLA"):
                events += [
                    (e.name, e.start_ns, e.end_ns)
                    for e in line.events
                    if not e.name.startswith(_NOT_KERNELS)
                ]
    return events


def covered_ns(events: list[tuple[str, int, int]]) -> int:
    """Nanoseconds covered by the union of the events' intervals."""
    total, end = 0, None
    for _, start, stop in sorted(events, key=lambda e: e[1]):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def traced(fn, args) -> tuple[float, list[tuple[str, int, int]]]:
    """Wall seconds of one call of `fn(*args)` under the profiler, and its kernels (the
    trace holds nothing else: the call is compiled and warm, and nothing else runs)."""
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            wall = time.perf_counter() - t
        (path,) = glob.glob(f"{d}/**/*.xplane.pb", recursive=True)
        return wall, kernel_events(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="updates in the traced call")
    parser.add_argument("--reps", type=int, default=3, help="traced calls per row (median)")
    parser.add_argument("--top", type=int, default=6, help="costliest kernels shown per row")
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    if args.steps < 1 or args.reps < 1 or args.top < 0 or args.hidden < 1:
        parser.error(f"--steps, --reps and --hidden must be >= 1, --top >= 0, got {vars(args)}")

    params = mlp_params(args.hidden, jax.random.key(0))
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
    dev = jax.devices()[0]
    print(
        f"# {platform.machine()}, {dev.platform} ({dev.device_kind}), jax {jax.__version__}, "
        f"optax {optax.__version__}; {sum(p.size for p in jax.tree.leaves(params))} params, "
        f"{args.steps} updates per traced call"
    )
    print(
        f"{'variant':42s} {'loop':>11s} {'kernels':>8s} {'kernel us':>10s} {'wall us':>8s} "
        f"{'uncovered us':>13s}"
    )
    rows = {}
    for name, opt in variants().items():
        _, scan, packed = build(opt, params, args.steps)
        state = opt.init(params)
        for loop, fn in (("packed_scan", packed), ("lax.scan", scan)):
            jax.block_until_ready(fn(params, state, grads))  # compiled and warm
            rows[(name, loop)] = (fn, state, [])
    fn, state, _ = next(iter(rows.values()))
    traced(fn, (params, state, grads))  # the profiler's start, untimed
    per = 1e3 * args.steps  # ns per call -> us per update
    for _ in range(args.reps):  # alternate the rows so noise hits all alike
        for fn, state, runs in rows.values():
            wall, events = traced(fn, (params, state, grads))
            busy = collections.Counter()
            for kernel, start, stop in events:
                busy[kernel] += stop - start
            wall_us = wall * 1e6 / args.steps
            runs.append(
                (
                    len(events) / args.steps,
                    sum(busy.values()) / per,
                    wall_us,
                    wall_us - covered_ns(events) / per,
                    busy,
                )
            )
    for (name, loop), (_, _, runs) in rows.items():
        kernels, busy, wall, uncovered = (statistics.median(r[i] for r in runs) for i in range(4))
        print(f"{name:42s} {loop:>11s} {kernels:8.2f} {busy:10.3f} {wall:8.3f} {uncovered:13.3f}")
    for (name, loop), (_, _, runs) in rows.items():
        total = sum((r[4] for r in runs), collections.Counter())
        top = total.most_common(args.top)
        if top:
            listed = ", ".join(f"{k} {ns / per / len(runs):.3f}" for k, ns in top)
            print(f"{name} in {loop}, costliest kernels (us per update, mean): {listed}")


if __name__ == "__main__":
    main()
