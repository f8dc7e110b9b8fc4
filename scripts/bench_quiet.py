"""Runs benchmark commands only on a quiet machine, and says how quiet it was (issue 16 item 6).

The timing tables of docs/BENCHMARKS.md follow one protocol: the machine is quiet (no other job
using the CPU), each benchmark alternates its variants and reports medians of >= 3 repetitions
(the scripts do that), and the command and date are stated. This script enforces the first part
and records it: before each command it samples the CPU for `--sample` seconds (from
/proc/stat) and waits, up to `--wait` seconds, until the CPU was idle for at least `--idle` of
that time; it prints the 1-minute load average and the idle fraction before and after each
command, the share of CPU time stolen by the hypervisor while it ran (a VM's noise that no
idle check sees), then the command's own output. A command that starts on a busy machine is not
run: the script says so and exits 1 at the end.

    python scripts/bench_quiet.py [--idle 0.9] [--wait 300] [--sample 3] \
        -- "python scripts/bench_overhead.py" "python scripts/bench_ceiling.py --reps 5"

Commands are split with `shlex` and run without a shell. The load average lags (a 1-minute
exponential average), so the idle fraction is what decides; the load is printed for the reader.

On a VM one quiet run's ratio can still be off by more than a benchmark's margin (a variant's
executable can run slow for a whole process, which the medians inside that process keep), so a
figure worth stating is a median over processes: `--rounds N` runs the command list N times over,
alternated, and ends with each `... ratio: X` line the commands printed, as the median of its N
values with the values listed and the command (`pooled over 3 rounds: ours/minimal throughput
ratio: 0.95 (0.91, 0.95, 1.00; 3 runs of ...)`). A run that exits non-zero adds no values.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time


def cpu_times() -> tuple[int, int, int]:
    """(idle, steal, total) jiffies of all CPUs since boot, from /proc/stat. Steal: time the
    hypervisor ran something else while this VM's CPUs wanted to run."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    return idle, steal, sum(fields)


def idle_fraction(seconds: float) -> float:
    """Fraction of CPU time idle over the next `seconds` (all cores together)."""
    idle0, _, total0 = cpu_times()
    time.sleep(seconds)
    idle1, _, total1 = cpu_times()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(idle: float, wait: float, sample: float) -> tuple[bool, float]:
    """Waits until a sample is at least `idle` idle; returns (quiet, last idle fraction)."""
    deadline = time.monotonic() + wait
    while True:
        frac = idle_fraction(sample)
        if frac >= idle or time.monotonic() >= deadline:
            return frac >= idle, frac


# A benchmark's ratio line: `<label> ratio: <number>`, the whole line.
RATIO = re.compile(r"^(?P<label>.*\bratio): (?P<value>-?\d+(?:\.\d+)?)$")


def run_echoed(command: str) -> tuple[int, list[str]]:
    """Runs `command`, printing its stdout as it comes; returns its exit code and stdout lines."""
    lines = []
    with subprocess.Popen(shlex.split(command), stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    return proc.returncode, lines


def pooled(ratios: dict[tuple[str, str], list[str]], rounds: int) -> list[str]:
    """`pooled over N rounds: <label>: <median> (<values>)`, one line per command and label."""
    out = []
    for (command, label), values in ratios.items():
        median = statistics.median(float(v) for v in values)
        digits = max(len(v.partition(".")[2]) for v in values)
        out.append(
            f"pooled over {rounds} rounds: {label}: {median:.{digits}f} "
            f"({', '.join(sorted(values, key=float))}; {len(values)} runs of `{command}`)"
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=0.9, help="idle CPU fraction needed (0-1]")
    ap.add_argument("--wait", type=float, default=300.0, help="seconds to wait for quiet")
    ap.add_argument("--sample", type=float, default=3.0, help="seconds per CPU sample")
    ap.add_argument(
        "--rounds", type=int, default=1, help="run the command list this many times, alternated"
    )
    ap.add_argument("commands", nargs="+", help="benchmark commands, each one string")
    args = ap.parse_args()
    if not 0.0 < args.idle <= 1.0 or args.wait < 0 or args.sample <= 0 or args.rounds < 1:
        ap.error(
            f"need 0 < --idle <= 1, --wait >= 0, --sample > 0, --rounds >= 1; got --idle "
            f"{args.idle}, --wait {args.wait}, --sample {args.sample}, --rounds {args.rounds}"
        )
    print(
        f"# {datetime.datetime.now().isoformat(timespec='seconds')} {platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}; quiet = CPU >= "
        f"{args.idle:.0%} idle over {args.sample:g} s",
        flush=True,
    )
    skipped = 0
    ratios: dict[tuple[str, str], list[str]] = {}
    for command in args.commands * args.rounds:
        quiet, frac = wait_quiet(args.idle, args.wait, args.sample)
        load = os.getloadavg()[0]
        print(f"\n$ {command}\n# before: idle {frac:.0%}, load {load:.2f}", flush=True)
        if not quiet:
            print(f"# not run: the machine was busy for {args.wait:g} s", flush=True)
            skipped += 1
            continue
        t0, (_, steal0, total0) = time.perf_counter(), cpu_times()
        rc, lines = run_echoed(command)
        took, (_, steal1, total1) = time.perf_counter() - t0, cpu_times()
        steal = (steal1 - steal0) / max(1, total1 - total0)
        print(
            f"# after: exit {rc}, {took:.0f} s, steal {steal:.1%} of CPU time during it, "
            f"load {os.getloadavg()[0]:.2f}, idle now {idle_fraction(args.sample):.0%}",
            flush=True,
        )
        skipped += rc != 0
        for m in filter(None, map(RATIO.match, lines if rc == 0 else [])):
            ratios.setdefault((command, m["label"]), []).append(m["value"])
    if args.rounds > 1:
        print("", *pooled(ratios, args.rounds), sep="\n")
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
