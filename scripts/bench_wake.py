"""What the 2-device line pays on fake CPU devices: a thread waking on another CPU, measured.

bench_anakin's 2-device/1-device ratio on fake CPU devices is bounded by the all-reduce of each
gradient step, a rendezvous of the two devices' threads (docs/BENCHMARKS.md, issue 16). This
script asks whether that rendezvous is XLA's cost or the machine's: it measures, side by side,

- `pipe handoff`: one byte bounced between two processes pinned on two CPUs, so each bounce
  wakes a sleeping process on the other CPU (no XLA involved); and on one CPU, a switch that
  wakes nothing remote;
- `all-reduce latency`: bench_anakin's `pmean` of 16 floats on 2 fake devices;
- with `--ppo`: PPO's 2-device/1-device throughput ratio, bench_anakin's default layout and
  default injected optimizer,

each with the CPUs idle and with one busy process per CPU at nice 19 (`busy`), so that no CPU
halts while a thread waits. At nice 19 such a process gets about 1.5% of a CPU that a nice-0
thread wants (CFS weights 15 and 1024), so what it changes is mostly the wake-up: on a VM a
halted virtual CPU must be woken by the hypervisor. The two conditions alternate `--reps`
times; each figure is a median.

    python scripts/bench_wake.py [--reps 3] [--ppo] [--steps 100000]

Prints one line per measure, `<measure>: idle X, busy Y`, and with `--ppo` ends with
`idle CPUs: 2-device/1-device throughput ratio: X` and the same for `busy CPUs` (lines that
`bench_quiet.py --rounds` pools).
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
from bench_anakin import all_reduce_us  # noqa: E402

from inject_rl import agents  # noqa: E402
from inject_rl.agents import ppo  # noqa: E402

_BOUNCER = """
import os, sys
cpu, bounces, rfd, wfd = map(int, sys.argv[1:])
os.sched_setaffinity(0, {cpu})
os.write(wfd, b"r")
for _ in range(bounces):
    os.read(rfd, 1)
    os.write(wfd, b"x")
"""


def pipe_handoff_us(cpus: tuple[int, int], bounces: int = 5000) -> float:
    """Microseconds per one-way handoff of a byte between two processes pinned on `cpus` (a
    fresh Python process bounces the bytes back: no fork of this multi-threaded one)."""
    to_child, from_parent = os.pipe()
    from_child, to_parent = os.pipe()
    allowed = os.sched_getaffinity(0)
    child = subprocess.Popen(
        [sys.executable, "-c", _BOUNCER, str(cpus[1]), str(bounces), str(to_child), str(to_parent)],
        pass_fds=(to_child, to_parent),
    )
    try:
        os.sched_setaffinity(0, {cpus[0]})
        os.read(from_child, 1)  # the child is pinned and ready
        t = time.perf_counter()
        for _ in range(bounces):
            os.write(from_parent, b"x")
            os.read(from_child, 1)
        elapsed = time.perf_counter() - t
    finally:
        os.sched_setaffinity(0, allowed)
        child.wait()
        for fd in (to_child, from_parent, from_child, to_parent):
            os.close(fd)
    return elapsed / bounces / 2 * 1e6


@contextlib.contextmanager
def busy_cpus(on: bool):
    """With `on`, one `while True: pass` process per CPU at nice 19 for the block's duration."""
    procs = []
    if on:
        procs = [
            subprocess.Popen([sys.executable, "-c", "import os\nos.nice(19)\nwhile True: pass"])
            for _ in range(os.cpu_count() or 1)
        ]
        time.sleep(0.5)  # let them start spinning
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def ppo_steps_per_s(num_devices: int, steps: int) -> float:
    cfg = ppo.Config(total_steps=steps)
    res = agents.get("ppo").train(cfg, num_devices=num_devices)
    return int(res.metrics["step"][-1]) / res.train_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ppo", action="store_true", help="also PPO's 2-device/1-device ratio")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per PPO run")
    args = parser.parse_args()
    if args.reps < 1 or args.steps < 1:
        parser.error(f"--reps and --steps must be >= 1, got {args.reps=} {args.steps=}")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or jax.device_count() < 2:
        parser.error(f"needs 2 CPUs and 2 devices, got CPUs {cpus} and {jax.devices()}")
    print(
        f"# {datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, "
        f"jax {jax.__version__} ({jax.default_backend()} x{jax.device_count()}); "
        f"median of {args.reps}, idle and busy alternated"
    )

    measures = {
        f"pipe handoff CPU {cpus[0]} -> CPU {cpus[1]} (us)": lambda: pipe_handoff_us(
            (cpus[0], cpus[1])
        ),
        f"pipe handoff on CPU {cpus[0]} alone (us)": lambda: pipe_handoff_us((cpus[0], cpus[0])),
        "all-reduce latency, 2 fake devices (us)": lambda: all_reduce_us(2),
    }
    if args.ppo:
        for n in (1, 2):  # compile outside the timed rounds
            ppo_steps_per_s(n, args.steps)
        measures["PPO 1 device (env steps/s)"] = lambda: ppo_steps_per_s(1, args.steps)
        measures["PPO 2 devices (env steps/s)"] = lambda: ppo_steps_per_s(2, args.steps)
    all_reduce_us(2)  # compile

    values = {(name, busy): [] for name in measures for busy in (False, True)}
    for _ in range(args.reps):
        for busy in (False, True):
            with busy_cpus(busy):
                for name, measure in measures.items():
                    values[name, busy].append(measure())

    def median(name, busy):
        return statistics.median(values[name, busy])

    for name in measures:
        print(f"{name}: idle {median(name, False):.2f}, busy {median(name, True):.2f}")
    if args.ppo:
        idle, busy = (
            median("PPO 2 devices (env steps/s)", b) / median("PPO 1 device (env steps/s)", b)
            for b in (False, True)
        )
        print(f"idle CPUs: 2-device/1-device throughput ratio: {idle:.3f}")
        print(f"busy CPUs: 2-device/1-device throughput ratio: {busy:.3f}")


if __name__ == "__main__":
    main()
