#!/usr/bin/env bash
# One benchmark run on a lent GPU machine (issue 16, items 3-5): the throughput ceiling
# (scripts/bench_ceiling.py, ours beside a minimal one-function PPO) at the default layout and at
# 2048 envs, the anakin loop on one device at 2048 envs (scripts/bench_anakin.py), the schedules'
# per-update overhead (scripts/bench_overhead.py, and kernel by kernel: scripts/bench_kernels.py),
# ours' PPO beside the minimal one kernel by kind (bench_kernels.py --ppo), the autoreset's cond
# vs selects (scripts/bench_resets.py), the optimized HLO of bench_ceiling's and
# bench_overhead's programs (what each rollout and gradient step launches, read offline), then
# PPO on brax's halfcheetah in brax's own layout, 50M env steps (scripts/brax_ppo.py; one line
# per 2.6M steps, so a run stopped at its time limit still shows its throughput and return
# curve). The `cpu` stage uses the machine's CPU cores instead, with 2 fake CPU devices: issue
# 16's 2-device/1-device line (scripts/bench_anakin.py) and the cross-CPU wake-up that bounds it
# on the 2-core development VM (scripts/bench_wake.py), on a bigger host.
#
#   OUT=/some/dir bash scripts/gpu_bench.sh [STAGE ...]   # on the GPU machine, from the repo root
#   . .venv/bin/activate && OUT=/tmp/gpu_out bash scripts/gpu_bench.sh --dry   # CPU check
#
# The GPU machine has no network and lacks some of our dependencies: they come as wheels from
# .whl/ (git-ignored, CPython 3.12 x86_64, filled here by scripts/gpu_wheels.sh), installed
# with --no-deps into /tmp/site. inject_rl is not installed there, and `inject_rl.agents` lives
# in the top-level agents/ folder (mapped by pyproject's package-dir), so the script assembles
# /tmp/site/inject_rl from ./inject_rl plus ./agents at run time: always the working tree's code.
# --dry skips the wheels and nvidia-smi and uses tiny step counts (any python with our deps).
# STAGEs (default: all, in this order): ceiling ceiling2048 anakin overhead kernels resets hlo
# cpu brax; naming some splits a short lease into calls.
# Everything printed goes to $OUT/gpu_bench.log. Each run has its own time limit, and all stop
# by DEADLINE (default 540 s) after the start, so the script ends within 9.5 minutes.
#
# Seconds per stage on one H100 (2026-11-28, wheels installed in ~10 s first), measured before
# the --packed variants, bench_kernels and the reruns were added: ceiling 32, ceiling2048 33,
# anakin 36, overhead 21, resets 64, hlo 25, brax about 560 (20 calls of 25 s after a 68 s
# first). Expect about 45, 48, 50, 120 (bench_kernels and two reruns), 64, 40 and 560 now,
# kernels (new) about 40 and cpu (new) about 70 (estimated from the 2-core VM's 40 s). A
# 15-minute lease (900 s, the machine's start included: 35 s on 2026-11-28) holds two calls back
# to back: `DEADLINE=250 ... overhead cpu hlo` (about 230 s), then at once, while the machine is
# warm, `DEADLINE=580 ... brax` (the 50M run owed since the first lease); the other stages go to
# a later lease.
set -uo pipefail

DRY=0
STAGES=()
for arg in "$@"; do
  case $arg in
    --dry) DRY=1 ;;
    ceiling | ceiling2048 | anakin | overhead | kernels | resets | hlo | cpu | brax) STAGES+=("$arg") ;;
    *)
      echo "usage: OUT=dir bash scripts/gpu_bench.sh [--dry] [ceiling|ceiling2048|anakin|overhead|kernels|resets|hlo|cpu|brax ...]" >&2
      exit 2
      ;;
  esac
done
((${#STAGES[@]})) || STAGES=(ceiling ceiling2048 anakin overhead kernels resets hlo cpu brax)
wants() { [[ " ${STAGES[*]} " == *" $1 "* ]]; }
: "${OUT:?set OUT to the folder for the log}"
cd "$(dirname "$0")/.." || exit 1
mkdir -p "$OUT"
LOG="$OUT/gpu_bench.log"
: >"$LOG"
export PYTHONUNBUFFERED=1
START=$SECONDS

log() { echo "$@" | tee -a "$LOG"; }

# Runs "$@" under `timeout LIMIT`, output tee'd to the log; a failure is logged, not fatal.
# LIMIT is cut to what is left of DEADLINE seconds since the start (the whole run's budget).
DEADLINE=${DEADLINE:-540}
step() {
  local limit=$1 left=$((DEADLINE - (SECONDS - START)))
  shift
  if ((left < 20)); then
    log "=== skipped, ${left} s left of the ${DEADLINE} s budget: $*"
    return 0
  fi
  ((limit <= left)) || limit=$left
  log ""
  log "=== [$((SECONDS - START)) s] $* (limit ${limit} s)"
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [[ $rc -eq 0 ]] || log "=== exit status $rc$([[ $rc -eq 124 || $rc -eq 137 ]] && echo ' (timed out)')"
  return 0
}

if [[ $DRY -eq 1 ]]; then
  SITE=/tmp/site-dry
  mkdir -p "$SITE"
else
  SITE=/tmp/site
  log "=== installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into $SITE"
  if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl 2>&1 | tee -a "$LOG"; then
    log "=== wheel install failed"
    exit 1
  fi
fi
# inject_rl as the installed package would be: ./inject_rl with ./agents as inject_rl/agents.
rm -rf "$SITE/inject_rl"
cp -r inject_rl "$SITE/inject_rl"
rm -rf "$SITE/inject_rl/agents"
cp -r agents "$SITE/inject_rl/agents"
export PYTHONPATH="$SITE:$PWD"
# One compilation cache for all three runs (ours reuses its programs across repetitions).
export INJECT_RL_COMPILE_CACHE=/tmp/inject-rl-jax-cache

if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- inject_rl agents scripts 2>/dev/null || rev="$rev + local changes"
else
  rev="unknown (no git here)"
fi
log "=== $(date -u +%FT%TZ), commit $rev"
[[ $DRY -eq 1 ]] || step 20 nvidia-smi -L
# -P: no working directory on sys.path, whose inject_rl has no agents/ (as for the scripts).
step 90 python3 -P -c '
import importlib.metadata as md, sys
import jax
print(sys.version.split()[0], "; ".join(
    f"{d} {md.version(d)}" for d in ("jax", "jaxlib", "optax", "chex", "flax", "dm-haiku", "rlax",
                                     "distrax", "tfp-nightly", "gymnasium", "numpy", "brax",
                                     "mujoco", "mujoco-mjx")))
print("backend", jax.default_backend(), "devices", jax.devices())
import haiku, rlax, distrax, gymnasium  # noqa: fail here, clearly, on a missing dependency
import brax.envs  # noqa: the brax run below needs it
from inject_rl.agents import ppo
print("inject_rl.agents.ppo from", ppo.__file__)
'

# hlo: bench_ceiling and bench_overhead once more, short, with XLA dumping every module's
# optimized HLO into $OUT/hlo.tar.gz (ours' PPO step and the minimal PPO; the optimizer variants'
# scans, whose kernel counts are equal on a GPU while their times are not). Its own empty compile
# cache, so that nothing is loaded instead of compiled (and dumped).
hlo() {
  local dump=/tmp/inject-rl-hlo cache=/tmp/inject-rl-hlo-cache limit=$1 ceiling_steps=$2
  local overhead_steps=$3
  rm -rf "$dump" "$cache"
  INJECT_RL_COMPILE_CACHE=$cache XLA_FLAGS="--xla_dump_to=$dump/ceiling --xla_dump_hlo_as_text" \
    step "$limit" python3 scripts/bench_ceiling.py --steps "$ceiling_steps" --reps 1
  INJECT_RL_COMPILE_CACHE=$cache XLA_FLAGS="--xla_dump_to=$dump/overhead --xla_dump_hlo_as_text" \
    step "$limit" python3 scripts/bench_overhead.py --steps "$overhead_steps" --reps 3
  (cd "$dump" && find ceiling -name '*after_optimizations.txt' -size +40k &&
    find overhead -name '*after_optimizations.txt' -size +4k) >"$dump.txt"
  tar -czf "$OUT/hlo.tar.gz" -C "$dump" -T "$dump.txt" &&
    log "=== $(wc -l <"$dump.txt") optimized modules in $OUT/hlo.tar.gz"
}

# Each stage: the GPU command, or with --dry a tiny one of the same script.
if [[ $DRY -eq 1 ]]; then
  wants ceiling && step 200 python3 scripts/bench_ceiling.py --steps 3000 --reps 1 --packed
  wants ceiling2048 && step 200 python3 scripts/bench_ceiling.py --envs 64 --steps 20000 --reps 1
  wants anakin && step 200 python3 scripts/bench_anakin.py --devices 1 --envs 64 --steps 5000 --reps 1 --packed
  wants overhead && step 200 python3 scripts/bench_overhead.py --reps 3
  wants overhead && step 200 python3 scripts/bench_kernels.py --steps 100 --reps 1
  wants kernels && step 200 python3 scripts/bench_kernels.py --ppo --iterations 2 --reps 1
  wants resets && step 200 python3 scripts/bench_resets.py --envs 8 --steps 3000 --reps 1
  wants hlo && hlo 200 3000 100
  if wants cpu; then
    JAX_PLATFORMS=cpu step 200 python3 scripts/bench_wake.py --reps 1 --ppo --steps 5000
    JAX_PLATFORMS=cpu step 200 python3 scripts/bench_anakin.py --reps 1 --steps 5000
  fi
  wants brax && step 300 python3 scripts/brax_ppo.py --env brax/inverted_pendulum --layout smoke \
    --steps 640 --iterations-per-call 1 --eval-episodes 1
else
  # (a) the default layout, 1e5 steps: latency-bound on a GPU; with ours' optimizer state packed
  # too (the third lease's GPU HLO: ours launched 70 kernels per gradient step, the minimal PPO
  # 59; on the CPU's HLO packing takes ours from 160 to 154, the minimal PPO's being 129).
  wants ceiling && step 100 python3 scripts/bench_ceiling.py --reps 3 --packed
  # (b) 2048 envs x 128 steps = 262,144 steps per iteration; 2e7 steps = 77 iterations.
  wants ceiling2048 && step 140 python3 scripts/bench_ceiling.py --envs 2048 --steps 20000000 --reps 3 --packed
  # (c) our default PPO layout (32-step rollouts, 10 epochs of one minibatch), 2048 envs.
  wants anakin && step 140 python3 scripts/bench_anakin.py --devices 1 --envs 2048 --steps 20000000 --reps 3 --packed
  # (d) the schedules' fixed per-update cost (kernels and microseconds), injected vs plain Adam.
  wants overhead && step 60 python3 scripts/bench_overhead.py --reps 7
  # (d') the same with XLA's command buffers (CUDA graphs) off, then with every run of kernels
  # captured (XLA forms a graph only from 5 commands in a row by default). On the third lease the
  # injected optimizers took 1.32-1.40x plain Adam's time in packed_scan at equal kernel counts
  # (8): if graphs capture plain Adam's loop body and not theirs, these ratios move towards 1.
  if wants overhead; then
    # Where each update's time goes, kernel by kernel (CUPTI times from a profiler trace).
    step 90 python3 scripts/bench_kernels.py --steps 2000 --reps 3
    for flags in --xla_gpu_enable_command_buffer= --xla_gpu_graph_min_graph_size=1; do
      log "=== XLA_FLAGS=$flags for the next run"
      XLA_FLAGS=$flags step 60 python3 scripts/bench_overhead.py --reps 7
    done
  fi
  # (d'') ours' PPO beside the minimal one, kernel time per iteration by kind (CUPTI), at the
  # issue's 8 envs and at 2,048 (where the gap is compute, not launches).
  if wants kernels; then
    step 60 python3 scripts/bench_kernels.py --ppo --envs 8 --iterations 10 --reps 3
    step 60 python3 scripts/bench_kernels.py --ppo --envs 2048 --iterations 5 --reps 3
  fi
  # (e) the autoreset's lax.cond vs selects (what step_batch chooses off the CPU), 8 and 2048 envs.
  wants resets && step 90 python3 scripts/bench_resets.py --reps 3
  # (f) what the programs of (a) and (d) launch: their optimized HLO, for reading offline.
  wants hlo && hlo 60 20000 1000
  # (f') 2 fake CPU devices on this host's cores: bench_anakin's 2-device/1-device line, and
  # bench_wake's cross-CPU pipe handoff and all-reduce, CPUs idle and kept busy. On the 2-core
  # development VM a thread woken on the other CPU takes 22-30 us (3-4 us on its own CPU) and the
  # fake devices' all-reduce 25-70 us, paid 10 times per PPO iteration.
  if wants cpu; then
    JAX_PLATFORMS=cpu step 90 python3 scripts/bench_wake.py --reps 3 --ppo
    JAX_PLATFORMS=cpu step 60 python3 scripts/bench_anakin.py --reps 3
  fi
  # (g) brax halfcheetah, brax's layout (2048 envs, 327,680 steps per iteration), 50M steps, then
  # the greedy return of 4 episodes; gets what is left of the budget (about 560 s on one H100:
  # run it alone, with DEADLINE=580).
  wants brax && step "$DEADLINE" python3 scripts/brax_ppo.py --env brax/halfcheetah --eval-episodes 4
fi
log ""
log "=== done in $((SECONDS - START)) s; summary:"
grep -E "^# jax|^# [0-9]|throughput ratio|select/cond|handoff|all-reduce latency|final mean episode return|overhead ratio|per-call ratio|^steps/s|final training return|greedy return|^make|^=== (exit|skipped|XLA_FLAGS)|^ +(ours|minimal) " "$LOG" | tee "$OUT/summary.txt"
