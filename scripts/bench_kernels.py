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
    python scripts/bench_kernels.py --ppo [--envs 8] [--iterations 10] [--reps 3] [--top 6]

`--ppo` compares whole PPO iterations instead, in bench_ceiling's layout (`--envs` x 128 steps,
4 epochs x 4 minibatches): ours (`ppo.train`) beside the minimal one-function PPO, each run for
`--iterations` and for twice as many, the per-iteration figures being the differences (what a
run does once, network init and env reset, cancels out), with the kernel time by kind
(matmuls, reductions, sorts and gathers, copies, random bits, other elementwise): where ours'
extra time goes (issue 16 item 4; on the H100 ours ran at 0.91-0.93 of the minimal PPO at 2,048
envs).

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
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from bench_ceiling import make_minimal, ours_config  # noqa: E402
from bench_overhead import build, mlp_params, variants  # noqa: E402

from inject_rl.agents import ppo  # noqa: E402

# CPU thunk-trace events that are not kernels: the executor's and thread pool's own spans.
_NOT_KERNELS = ("ThreadpoolListener", "ThunkExecutor", "end: ")


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
                own = [
                    (e.name, e.start_ns, e.end_ns)
                    for e in line.events
                    if not e.name.startswith(_NOT_KERNELS)
                ]
                own.sort(key=lambda e: e[1])
                # A thunk that spans the next one on its thread runs others (a while loop's, a
                # conditional's): not a kernel of its own.
                nxt = [*own[1:], None]
                events += [e for e, n in zip(own, nxt, strict=True) if n is None or n[1] >= e[2]]
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


# Kinds of kernel, by name (XLA's fusion names, cuBLAS/cuDNN kernel names, CPU thunk names);
# the first that matches.
KINDS = (
    ("matmul", r"gemm|dot|nvjet|xmma|cutlass|cublas|sm\d\d_|ynn"),
    ("reduce", r"reduce"),
    ("sort/gather/scatter", r"sort|gather|scatter|cub::|radix"),
    ("copy/slice", r"copy|memcpy|memset|dynamic.update|dynamic.slice|concatenate"),
    ("random bits", r"threefry|random|rng"),
)


def kind_of(kernel: str) -> str:
    name = kernel.lower()
    return next((kind for kind, pattern in KINDS if re.search(pattern, name)), "elementwise/other")


def profile(events: list[tuple[str, int, int]]) -> tuple[collections.Counter, ...]:
    """`(totals, kinds, names)`: kernel count, summed and covered ns; ns by kind; ns by name."""
    kinds, names = collections.Counter(), collections.Counter()
    for kernel, start, stop in events:
        kinds[kind_of(kernel)] += stop - start
        names[kernel] += stop - start
    totals = collections.Counter(
        {"kernels": len(events), "kernel": sum(kinds.values()), "covered": covered_ns(events)}
    )
    return totals, kinds, names


def ppo_rows(args) -> None:
    """Ours beside the minimal PPO, per iteration, by kind of kernel.

    Each program runs `--iterations` and twice as many (ours: one host call of `--iterations`,
    then two; the minimal PPO: two compiled lengths), and the per-iteration figures are the
    differences over `--iterations`: what both do once per run (network init, env reset, the
    first host call's transfers) cancels out.
    """
    n = args.iterations
    key = jax.random.key(0)
    calls = {}
    for k in (1, 2):
        cfg = ours_config(args.envs, k * n, n)
        ppo.train(cfg)  # compiled (and its programs cached) before the traces
        calls[("ours", k)] = (lambda cfg=cfg: ppo.train(cfg).params, ())
        minimal = jax.jit(make_minimal(args.envs, k * n, 2.5e-4)).lower(key).compile()
        jax.block_until_ready(minimal(key))
        calls[("minimal", k)] = (minimal, (key,))
    dev = jax.devices()[0]
    print(
        f"# {platform.machine()}, {dev.platform} ({dev.device_kind}), jax {jax.__version__}; "
        f"{args.envs} envs x 128 steps, 4 epochs x 4 minibatches; per iteration: the difference "
        f"between runs of {2 * n} and {n} iterations over {n}; medians of {args.reps}"
    )
    traced(*calls[("minimal", 1)])  # the profiler's start, untimed
    runs = {name: [] for name in calls}
    for _ in range(args.reps):  # alternate the programs so noise hits all alike
        for name, (fn, fn_args) in calls.items():
            runs[name].append(profile(traced(fn, fn_args)[1]))
    per = 1e3 * n  # ns over n iterations -> us per iteration

    def per_iteration(program: str, part: int, key: str) -> float:
        longer, shorter = (
            statistics.median(r[part][key] for r in runs[(program, k)]) for k in (2, 1)
        )
        return (longer - shorter) / (n if key == "kernels" else per)

    print(f"{'per iteration':>13s} {'kernels':>9s} {'kernel us':>10s} {'covered us':>11s}")
    for program in ("ours", "minimal"):
        count, busy, covered = (
            per_iteration(program, 0, k) for k in ("kernels", "kernel", "covered")
        )
        print(f"{program:>13s} {count:9.1f} {busy:10.1f} {covered:11.1f}")
    kinds = sorted({k for rs in runs.values() for r in rs for k in r[1]})
    print(f"{'kind of kernel (us per iteration)':36s} {'ours':>9s} {'minimal':>9s}")
    for kind in kinds:
        print(
            f"{kind:36s} {per_iteration('ours', 1, kind):9.1f} "
            f"{per_iteration('minimal', 1, kind):9.1f}"
        )
    for program in ("ours", "minimal"):
        total = sum((r[2] for r in runs[(program, 2)]), collections.Counter())
        listed = ", ".join(
            f"{k} {ns / per / 2 / args.reps:.1f}" for k, ns in total.most_common(args.top)
        )
        print(
            f"{program}, costliest kernels (us per iteration, mean over the longer run): {listed}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="updates in the traced call")
    parser.add_argument("--reps", type=int, default=3, help="traced calls per row (median)")
    parser.add_argument("--top", type=int, default=6, help="costliest kernels shown per row")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--ppo", action="store_true", help="ours' PPO beside the minimal PPO")
    parser.add_argument("--envs", type=int, default=8, help="--ppo: num_envs of both")
    parser.add_argument("--iterations", type=int, default=10, help="--ppo: iterations per call")
    args = parser.parse_args()
    if min(args.steps, args.reps, args.hidden, args.envs, args.iterations) < 1 or args.top < 0:
        parser.error(
            "--steps, --reps, --hidden, --envs and --iterations must be >= 1, --top >= 0, got "
            f"{vars(args)}"
        )
    if args.ppo:
        ppo_rows(args)
        return

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
