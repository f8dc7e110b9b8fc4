"""Kernels per update: the fixed cost signal-driven schedules add to a step (issue 16 item 3).

A small network's Adam update is a few dozen tiny kernels, so each kernel the schedules' scalar
arithmetic adds shows in the step time (`scripts/bench_overhead.py`) and, on a GPU, costs a
launch. These tests compile updates inside `lax.scan`, as our loops run them, and count the
kernels of one update.

Counting rule (`inject_rl._hlo.kernels_per_step`): one scan step compiles to the body of one
`while` loop; each of its instructions but the plumbing (`parameter`, `get-tuple-element`,
`tuple`, `constant`, `bitcast`) is one kernel, a fusion once however many ops it fused, and each
`copy` XLA inserts for a loop-carried value still read after its new value is due.

Counts with jax 0.10.2 on CPU, injected minus plain (before -> after issue 16 item 3):
kl_target + plateau as in bench_overhead 21 -> 17 (plain Adam: 22); PPO's default optimizer
9 -> 7; constant hyperparameters 1 -> 1 (the injection's step count). In `packed_scan` one
each. On an H100 (jax 0.11.2, bench_overhead's own count) the bench pair went 21 -> 19
kernels, plain Adam 8: XLA's GPU fusion and copy rules differ, so a change that removes CPU
kernels must not add GPU ones (see `inject_rl.schedules._common.accumulate`); these tests can
only watch the CPU.
"""

import jax
import jax.numpy as jnp
import optax
import pytest

from inject_rl import schedules
from inject_rl._hlo import kernels_per_step
from inject_rl.loops import packed_scan
from inject_rl.optim import carried, injected


def _mlp_params() -> dict:
    """bench_overhead's MLP (4, 64, 64, 2): 4.6k parameters in six leaves."""
    sizes = [(4, 64), (64, 64), (64, 2)]
    keys = jax.random.split(jax.random.key(0), len(sizes))
    return {
        f"layer{i}": {"w": jax.random.normal(k, s) * 0.1, "b": jnp.zeros(s[1])}
        for i, (k, s) in enumerate(zip(keys, sizes, strict=True))
    }


_SIGNALS = {
    "kl": jnp.float32(0.012),
    "episode_return": jnp.float32(100.0),
    "episode_count": jnp.float32(4.0),
    "loss": jnp.float32(1.0),
}


def compiled_update_hlo(
    opt: optax.GradientTransformationExtraArgs, steps: int = 8, scan=jax.lax.scan
) -> str:
    """The compiled HLO text of `steps` updates in `scan`, with signals every update.

    Grads and signals are arguments (as in a learner, where they change every step), so XLA
    cannot fold them into constants.
    """
    params = _mlp_params()

    def train(params, state, grads, signals):
        def step(carry, _):
            params, state = carry
            updates, state = opt.update(grads, state, params, **signals)
            return (optax.apply_updates(params, updates), state), None

        return scan(step, (params, state), None, length=steps)[0]

    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
    lowered = jax.jit(train).lower(params, opt.init(params), grads, _SIGNALS)
    return lowered.compile().as_text()


def _bench_pair():
    """`scripts/bench_overhead.py`'s optimizers: stateful learning rate and b1 vs plain Adam."""
    return optax.adam(3e-4), injected(
        optax.adam,
        learning_rate=schedules.kl_target(3e-4),
        b1=schedules.plateau(0.9, factor=1.05, max_value=0.99),
    )


def _ppo_pair():
    """PPO's default optimizer (agents/ppo.py: 4 minibatches) vs the same clip and Adam, plain."""
    plain = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3, eps=1e-5))
    inj = optax.chain(
        injected(
            optax.adam,
            learning_rate=schedules.kl_target(1e-3, target=0.03, every=4),
            clip=0.5,
            eps=1e-5,
        ),
        carried(ent_coef=0.0, clip_eps=0.2),
    )
    return plain, inj


def _constant_pair():
    return optax.adam(3e-4), injected(optax.adam, learning_rate=3e-4)


# (pair, most extra kernels per update). Lower a bound when a change removes kernels; a change
# that adds some must say why in its commit. The counts before issue 16 item 3: 21, 9, 1.
CASES = [(_bench_pair, 17), (_ppo_pair, 7), (_constant_pair, 1)]


# The same in `loops.packed_scan`, as our agents' loops run them: the carry's scalars in one
# vector, so the schedules' scalar arithmetic is one kernel instead of one per scalar. What is
# left is the vector's copy (its new value reads other elements of the old one, so XLA cannot
# write it in place). Measured: 1, 1, 1 (jax 0.10.2, CPU); 3, 2, 1 while the schedules' window
# mean divided by the state's `every` (a divide XLA kept a kernel of its own).
PACKED_CASES = [(_bench_pair, 1), (_ppo_pair, 1), (_constant_pair, 1)]


def test_window_mean_is_no_kernel_of_its_own_whatever_every():
    """A window that is not a power of two adds no kernel in `packed_scan` either (the cases
    above cover `every` 1 and 4)."""
    inj = injected(
        optax.adam,
        learning_rate=schedules.kl_target(3e-4, every=3),
        b1=schedules.plateau(0.9, factor=1.05, max_value=0.99, every=3),
    )
    kernels = kernels_per_step(compiled_update_hlo(inj, scan=packed_scan))
    plain = kernels_per_step(
        compiled_update_hlo(optax.with_extra_args_support(optax.adam(3e-4)), scan=packed_scan)
    )
    assert sum(kernels.values()) - sum(plain.values()) <= 1, (kernels, plain)


@pytest.mark.parametrize(
    ("make", "most_extra", "scan"),
    [(*case, jax.lax.scan) for case in CASES] + [(*case, packed_scan) for case in PACKED_CASES],
    ids=[f"{n}-lax.scan" for n in ("bench", "ppo", "constants")]
    + [f"{n}-packed_scan" for n in ("bench", "ppo", "constants")],
)
def test_extra_kernels_per_update_are_bounded(make, most_extra, scan):
    plain, inj = make()
    plain_kernels = kernels_per_step(
        compiled_update_hlo(optax.with_extra_args_support(plain), scan=scan)
    )
    inj_kernels = kernels_per_step(compiled_update_hlo(inj, scan=scan))
    extra = sum(inj_kernels.values()) - sum(plain_kernels.values())
    print(f"plain {dict(plain_kernels)}, injected {dict(inj_kernels)}: {extra} extra")
    assert sum(plain_kernels.values()) > 0
    assert extra <= most_extra, (
        f"{extra} extra kernels per update (at most {most_extra}): plain {dict(plain_kernels)}, "
        f"injected {dict(inj_kernels)}"
    )


def test_counting_rule_sees_each_kernel():
    def count(f, *args):
        return kernels_per_step(jax.jit(f).lower(*args).compile().as_text())

    def scan(body):
        return lambda carry: jax.lax.scan(lambda c, _: (body(c), None), carry, None, length=4)[0]

    x = jnp.zeros(3)
    # The scan's step counter is one kernel; an elementwise update of a leaf fuses into one.
    assert count(scan(lambda c: c * 2.0 + 1.0), x) == {"fusion": 2}
    # `a` is still read (by the new `b`) when its new value is due: XLA copies it first.
    assert count(scan(lambda ab: (ab[0] + 1.0, ab[1] * ab[0])), (x, x)) == {"fusion": 3, "copy": 1}
