"""`loops.packed_scan`: `lax.scan`'s results bit for bit, fewer kernels per step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl._hlo import kernels_per_step
from inject_rl.loops import packed_scan


def _carry():
    """Scalars of several dtypes (and awkward float bits), arrays and a key."""
    return {
        "f": jnp.float32(1.5),
        "neg_zero": jnp.float32(-0.0),
        "tiny": jnp.float32(1e-45),  # a denormal: it must travel as bits, not be flushed
        "nan": jnp.float32(np.nan),
        "i": jnp.int32(-7),
        "u": jnp.uint32(2**32 - 1),
        "b": jnp.bool_(True),
        "h": jnp.float16(0.25),  # 16-bit: a group of its own...
        "h2": jnp.float16(-3.0),
        "v": jnp.arange(3, dtype=jnp.float32),  # not a scalar: carried as it is
        "key": jax.random.key(0),
    }


def _step(c, x):
    k, sub = jax.random.split(c["key"])
    new = {
        "f": c["f"] * 1.25 + x,
        "neg_zero": c["neg_zero"] * 1.0,
        "tiny": c["tiny"],
        "nan": c["nan"] + x,
        "i": c["i"] + jnp.int32(3),
        "u": c["u"] - jnp.uint32(1),
        "b": ~c["b"],
        "h": c["h"] * jnp.float16(2),
        "h2": c["h2"] + jnp.float16(1),
        "v": c["v"] + c["f"],
        "key": k,
    }
    return new, (c["f"], jax.random.uniform(sub))


def _bits(tree):
    def leaf(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x).tobytes()

    return [leaf(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_same_bits_as_lax_scan(reverse):
    xs = jnp.linspace(-1.0, 1.0, 5)
    want = jax.jit(lambda c: jax.lax.scan(_step, c, xs, reverse=reverse))(_carry())
    got = jax.jit(lambda c: packed_scan(_step, c, xs, reverse=reverse))(_carry())
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert _bits(got) == _bits(want)
    # XLA's CPU arithmetic flushes denormals; the bits must come back anyway.
    assert np.asarray(got[0]["tiny"]).view(np.uint32) == 1
    assert np.signbit(np.asarray(got[0]["neg_zero"]))


def test_under_vmap_and_with_length():
    def run(scan, f0):
        carry = {"f": f0, "n": jnp.int32(0), "g": f0 * 2}
        return scan(lambda c, _: ({"f": c["f"] / 3, "n": c["n"] + 1, "g": c["g"] - c["f"]}, c["n"]),
                    carry, None, length=4)  # fmt: skip

    f0 = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    want = jax.vmap(lambda f: run(jax.lax.scan, f))(f0)
    got = jax.jit(jax.vmap(lambda f: run(packed_scan, f)))(f0)
    assert _bits(got) == _bits(want)


def test_python_numbers_and_complex_scalars_in_the_carry():
    def step(c, _):
        return (c[0] + 1, c[1] * 0.5, c[2] * 1j, c[3]), None

    init = (0, 1.0, jnp.complex64(1 + 0j), None)
    want = jax.lax.scan(step, init, None, length=3)[0]
    got = packed_scan(step, init, None, length=3)[0]
    assert _bits(got) == _bits(want)
    assert got[3] is None


def test_a_carry_without_scalars_is_lax_scan():
    carry, ys = packed_scan(lambda c, x: (c + x, c), jnp.zeros(2), jnp.ones((3, 2)))
    np.testing.assert_array_equal(carry, [3.0, 3.0])
    assert ys.shape == (3, 2)


def test_a_changed_dtype_is_refused():
    with pytest.raises(
        TypeError, match=r"packed_scan: a scalar leaf \(\[0\]\) went from int32\[\] to float32"
    ):
        packed_scan(lambda c, _: ((c[0] * 1.5, c[1]), None), (jnp.int32(1), jnp.int32(2)), None,
                    length=2)  # fmt: skip


def test_scalar_bookkeeping_is_one_kernel():
    """Ten scalars updated from each other: one kernel per scalar in `lax.scan`, one in all
    (plus the vector's copy and the scan's counter) in `packed_scan`."""

    def step(c, _):
        total, count, best, bad = c["total"], c["count"], c["best"], c["bad"]
        mean = total / jnp.maximum(count, 1).astype(jnp.float32)
        better = mean > best
        return {
            "total": total + 1.0,
            "count": count + 1,
            "best": jnp.where(better, mean, best),
            "bad": jnp.where(better, 0, bad + 1),
            "scale": c["scale"] * jnp.where(bad > 3, 0.5, 1.0),
            "others": tuple(o * 1.01 + mean for o in c["others"]),
        }, None

    carry = {
        "total": jnp.float32(0), "count": jnp.int32(0), "best": jnp.float32(-jnp.inf),
        "bad": jnp.int32(0), "scale": jnp.float32(1),
        "others": tuple(jnp.float32(i) for i in range(5)),
    }  # fmt: skip

    def kernels(scan):
        f = jax.jit(lambda c: scan(step, c, None, length=8)[0])
        return sum(kernels_per_step(f.lower(carry).compile().as_text()).values())

    plain, packed = kernels(jax.lax.scan), kernels(packed_scan)
    assert plain >= 10, plain
    assert packed <= 3, packed
