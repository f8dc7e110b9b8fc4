"""`packed_scan`: `lax.scan` whose carry keeps its scalars in one integer vector per width.

Why (issue 16 item 3): a loop-carried 0-d array costs XLA's CPU backend a kernel of its own each
step: XLA does not fuse sibling scalar computations, and a scalar whose old value is still read
when the new one is written is copied first. An injected optimizer with two signal-driven
schedules carries about twenty such scalars (step counts, each schedule's value, window and
constants), so a small network's Adam step in `lax.scan` runs 39 kernels against plain Adam's
22; in `packed_scan` it runs 23 (`scripts/bench_overhead.py`, tests/optim/test_kernels.py): the
one more is the vector's copy (its new value reads other elements of the old one, so XLA cannot
write it in place).

Carried as one vector (the scalars' bits), the new values are written by one elementwise kernel
that XLA fuses with the scalar arithmetic feeding it; reads are slices, fused into their users.
On this 2-core CPU that step takes 1.11-1.15x plain Adam's in `lax.scan` and 1.035x in
`packed_scan` (medians of 7 quiet runs, docs/BENCHMARKS.md; 1.126x at 25 kernels, before the
schedules' window mean stopped being a divide of its own). On one H100, where each kernel is a
launch, packing took the step from 21.0 to 11.6 us (plain Adam 8.3; measured at 25 kernels).

Where it pays: a loop whose step is mostly an optimizer update on a small network (a user's
purejaxrl-style update loop, `scripts/bench_overhead.py`). Our agents keep `lax.scan`: measured
on PPO's compiled step (8 envs x 128 steps, 4 x 4 minibatches), packing the minibatch, epoch
and iteration scans saved 5 of 160 kernels per gradient step but cost about as many where the
loops nest (packing and unpacking at each inner loop's entry and exit): 66,406 -> 66,346
kernels per iteration, 0.1%, and DQN's 0.4%, for results that are no longer bitwise those of
before (see `packed_scan`).

`inject_rl.optim.packed` packs the optimizer state itself, which then stays packed through any
loop: the same 23 kernels in a plain `lax.scan`, and, what `packed_scan` cannot give, 13 leaves
instead of 42 for a jitted call per update to dispatch (a host loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from inject_rl.optim import _packing


def packed_scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """`jax.lax.scan(f, init, xs, length)` with the carry's scalars packed per dtype.

    A drop-in for `lax.scan` in an on-device update loop: `f` sees and returns the carry exactly
    as with `lax.scan`. Inside the compiled loop every 0-d leaf of the carry (step counts,
    injected hyperparameters, schedule states...) travels as its bits in one integer vector per
    width (floats, ints and bools of 32 bits in one int32 vector), so the scalar bookkeeping of
    an update runs as one kernel instead of one per scalar (see the module docstring). Arrays of
    other shapes and PRNG keys are carried unchanged.

    The packing itself is exact (NaN payloads, -0.0 and denormals included), but XLA compiles
    the body around it differently: where it then contracts a multiply and an add into one
    fused multiply-add that it did not before (or the reverse), a result differs from
    `lax.scan`'s in its last bit, as any change to a compiled program may make it. Same seed,
    same result: runs stay deterministic.

    Args:
      f: `(carry, x) -> (carry, y)`, as for `lax.scan`.
      init: the initial carry.
      xs, length, kwargs: as for `lax.scan` (`reverse`, `unroll`...).

    Returns:
      `(carry, ys)`, as `lax.scan` returns them.

    >>> import jax.numpy as jnp
    >>> def step(c, x):
    ...     return {"n": c["n"] + 1, "total": c["total"] + x}, c["total"]
    >>> carry, ys = packed_scan(step, {"n": jnp.int32(0), "total": jnp.float32(0)}, jnp.ones(3))
    >>> print(int(carry["n"]), float(carry["total"]), ys.tolist())
    3 3.0 [0.0, 1.0, 2.0]
    """
    layout = _packing.layout(init)
    if not layout.groups:
        return jax.lax.scan(f, init, xs, length=length, **kwargs)

    def pack(carry):
        try:
            return _packing.pack(layout, carry)
        except TypeError as e:  # what `lax.scan` refuses too
            raise TypeError(
                f"packed_scan: {e}; the body must return the carry with the shapes and dtypes "
                "it got"
            ) from None

    def body(packed, x):
        carry, y = f(_packing.unpack(layout, packed), x)
        return pack(carry), y

    packed, ys = jax.lax.scan(body, pack(init), xs, length=length, **kwargs)
    return _packing.unpack(layout, packed), ys
