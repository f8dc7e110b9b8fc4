"""Step-time overhead of signal-driven schedules over plain optax Adam, measured side by side.

Prints the median time of a jitted Adam update on a small MLP's parameters for plain `optax.adam`
and for `optax.inject_hyperparams(optax.adam)` with two stateful schedules (learning rate
`kl_target`, b1 `plateau`) fed signals every step, in three settings: one jitted call per update
(what a host loop pays), `--steps` updates inside one `jax.lax.scan` (a user's own on-device
loop), and the same inside `inject_rl.loops.packed_scan` (the drop-in for such a loop: the
carry's scalars in one vector, so the schedules' bookkeeping is one kernel, not one per scalar).
A third row, `inject_hyperparams(adam)` with the same two hyperparameters as constants, says how
much of the overhead is the injection itself rather than the schedules; a fourth,
`optim.packed` around the scheduled one, what its state's scalars packed into one vector save.
Repetitions alternate between the variants so machine noise hits all alike. Also prints the
kernels of one update in the scan (`inject_rl._hlo.kernels_per_step`, the kernel tests' rule):
the fixed cost per update that dominates on small networks; and the optimizer state's leaves: in
a jitted call per update each leaf is an argument and a result to dispatch, which a host loop
pays on every call (about 3 us a leaf on the 2-core CPU, more than the update itself).

    python scripts/bench_overhead.py [--reps 15] [--steps 10000] [--hidden 64]

Each repetition times `--steps` updates in one scan call (about 50 ms on a 2-core CPU): with
1,000 (5 ms, the default before 2026-11-27 night) the ratio of one run ranged 0.79-1.21 between
runs on a quiet machine; with 10,000, 0.94-1.09 over seven runs (compare medians of runs).

Ends with `overhead ratio: X.XXX` (packed_scan setting, schedules / plain; goal <= 1.03), after
`per-call ratio` and `packed-state per-call ratio` (a jitted call per update, schedules /
plain, unpacked and packed state), `lax.scan ratio: X.XXX` (the same in a plain `lax.scan`)
and `constants ratio: X.XXX` (packed_scan, constants / plain).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from inject_rl import optim, schedules
from inject_rl._hlo import kernels_per_step
from inject_rl.loops import packed_scan


def mlp_params(hidden: int, key) -> dict:
    sizes = [(4, hidden), (hidden, hidden), (hidden, 2)]
    keys = jax.random.split(key, len(sizes))
    return {
        f"layer{i}": {"w": jax.random.normal(k, s) * 0.1, "b": jnp.zeros(s[1])}
        for i, (k, s) in enumerate(zip(keys, sizes, strict=True))
    }


def kernels_of(hlo: str) -> str:
    """The kernels of one update in the scan, or `-` where the backend left no single loop."""
    try:
        return str(sum(kernels_per_step(hlo).values()))
    except ValueError:
        return "-"


def variants() -> dict[str, optax.GradientTransformationExtraArgs]:
    scheduled = optax.inject_hyperparams(optax.adam)(
        learning_rate=schedules.kl_target(3e-4),
        b1=schedules.plateau(0.9, factor=1.05, max_value=0.99),
    )
    return {
        "plain optax.adam": optax.with_extra_args_support(optax.adam(3e-4)),
        "inject_hyperparams(adam) + 2 schedules": scheduled,
        "inject_hyperparams(adam), constants": optax.inject_hyperparams(optax.adam)(
            learning_rate=3e-4, b1=0.9
        ),
        "optim.packed(the same + 2 schedules)": optim.packed(scheduled),
    }


def build(opt, params, steps: int):
    signals = {
        "kl": jnp.float32(0.012),
        "episode_return": jnp.float32(100.0),
        "episode_count": jnp.float32(4.0),
    }

    def update(params, state, grads):
        updates, state = opt.update(grads, state, params, **signals)
        return optax.apply_updates(params, updates), state

    step = jax.jit(update)

    def in_scan(scan):
        @jax.jit
        def run(params, state, grads):
            def body(carry, _):
                return update(*carry, grads), None

            return scan(body, (params, state), None, length=steps)[0]

        return run

    return step, in_scan(jax.lax.scan), in_scan(packed_scan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10_000, help="updates per timed scan call")
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    if args.reps < 3 or args.hidden < 1 or args.steps < 1:
        parser.error(
            "--reps must be >= 3, --steps and --hidden >= 1, got "
            f"{args.reps=} {args.steps=} {args.hidden=}"
        )

    params = mlp_params(args.hidden, jax.random.key(0))
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
    n = sum(p.size for p in jax.tree.leaves(params))
    print(
        f"machine: {platform.processor() or platform.machine()}, {jax.devices()[0].platform}, "
        f"jax {jax.__version__}, optax {optax.__version__}; MLP with {n} params"
    )

    built, kernels, leaves = {}, {}, {}
    for name, opt in variants().items():
        step, scan, packed = build(opt, params, args.steps)
        state = opt.init(params)
        p, s = jax.tree.map(jnp.copy, params), state
        p, s = step(p, s, grads)  # compile
        for fn in (scan, packed):
            jax.block_until_ready(fn(params, state, grads))  # compile
        built[name] = (step, scan, packed, p, s, state)
        kernels[name] = "/".join(
            kernels_of(fn.lower(params, state, grads).compile().as_text()) for fn in (scan, packed)
        )
        leaves[name] = len(jax.tree.leaves(state))

    per_call = {k: [] for k in built}
    per_scan = {k: [] for k in built}
    per_packed = {k: [] for k in built}
    calls = 200
    for _ in range(args.reps):
        for name, (step, scan, packed, p, s, state) in built.items():
            t = time.perf_counter()
            for _ in range(calls):
                p, s = step(p, s, grads)
            jax.block_until_ready(p)
            per_call[name].append((time.perf_counter() - t) / calls)
            built[name] = (step, scan, packed, p, s, state)
            for fn, times in ((scan, per_scan), (packed, per_packed)):
                t = time.perf_counter()
                jax.block_until_ready(fn(params, state, grads))
                times[name].append((time.perf_counter() - t) / args.steps)

    plain, inj, const, packed_state = list(built)
    print(
        f"{'variant':42s} {'jit call (us)':>14s} {'lax.scan (us)':>14s} "
        f"{'packed_scan (us)':>17s} {'kernels scan/packed':>20s} {'state leaves':>13s}"
    )
    for name in built:
        print(
            f"{name:42s} {statistics.median(per_call[name]) * 1e6:14.2f} "
            f"{statistics.median(per_scan[name]) * 1e6:14.2f} "
            f"{statistics.median(per_packed[name]) * 1e6:17.2f} {kernels[name]:>20s} "
            f"{leaves[name]:13d}"
        )

    def ratio(times, variant=inj):
        return statistics.median(times[variant]) / statistics.median(times[plain])

    print(f"per-call ratio: {ratio(per_call):.3f}")
    print(f"packed-state per-call ratio: {ratio(per_call, packed_state):.3f}")
    print(f"lax.scan ratio: {ratio(per_scan):.3f}")
    print(f"constants ratio: {ratio(per_packed, const):.3f}")
    print(f"overhead ratio: {ratio(per_packed):.3f}")


if __name__ == "__main__":
    main()
