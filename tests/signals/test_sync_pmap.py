"""With `sync` replicas' hyperparameters and schedule states stay bitwise-equal; without, drift."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules as S
from inject_rl.signals import sync, sync_and_pmean

AXIS = "device"
STEPS = 1000


def _optimizer():
    return optax.inject_hyperparams(optax.adam)(
        learning_rate=S.plateau(1e-2, patience=5, min_value=1e-5),
        b1=S.progress(0.8, 0.95, low=0.0, high=1.0),
        b2=S.bandit([0.99, 0.999], hold=3),
        eps=S.kl_target(1e-6, signal="kl", min_value=1e-9, max_value=1e-3),
    )


def _train(num_devices: int, use_sync: bool):
    opt = _optimizer()
    keys = jax.random.split(jax.random.key(0), num_devices)

    def per_device(key):
        params = {"w": jnp.zeros((4,))}
        state = opt.init(params)

        def step(carry, key):
            params, state = carry
            k1, k2, k3 = jax.random.split(key, 3)
            # Every device sees its own returns, KL, and often no finished episode (NaN return).
            count = jax.random.randint(k1, (), 0, 3).astype(jnp.float32)
            ret = jnp.where(count > 0, jax.random.uniform(k2, (), maxval=1.0), jnp.nan)
            signals = {
                "episode_return": ret,
                "episode_count": count,
                "kl": jax.random.uniform(k3, (), maxval=0.03),
                "loss": jnp.sum(params["w"]),
            }
            if use_sync:
                signals = sync(signals, AXIS)
            grads = jax.lax.pmean({"w": jnp.ones(4) * 0.1}, AXIS)
            updates, state = opt.update(grads, state, params, **signals)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(step, (params, state), jax.random.split(key, STEPS))
        return params, state

    return jax.pmap(per_device, axis_name=AXIS, devices=jax.devices()[:num_devices])(keys)


def _replicas_equal(tree) -> bool:
    return all(
        all(np.array_equal(x[0], x[i], equal_nan=True) for i in range(1, x.shape[0]))
        for x in map(np.asarray, jax.tree.leaves(tree))
    )


@pytest.mark.parametrize("num_devices", [2, 4], ids=["2dev", "4dev"])
def test_sync_keeps_replicas_bitwise_equal(num_devices):
    params, state = _train(num_devices, use_sync=True)
    assert _replicas_equal(state.hyperparams)
    assert _replicas_equal(state.hyperparams_states)
    assert _replicas_equal(params)
    # The schedules really moved (the test would be vacuous otherwise).
    lr = np.asarray(state.hyperparams["learning_rate"])
    assert lr[0] < 1e-2


@pytest.mark.parametrize("num_devices", [2, 4], ids=["2dev", "4dev"])
def test_without_sync_replicas_diverge(num_devices):
    """The documented hazard: per-device signals give per-device hyperparameters."""
    params, state = _train(num_devices, use_sync=False)
    assert not _replicas_equal(state.hyperparams_states)
    assert not _replicas_equal(params)


@pytest.mark.parametrize("num_devices", [1, 3])
def test_sync_and_pmean_is_sync_and_pmean_in_one_all_reduce(num_devices):
    """The packed form gives bitwise what `sync` and `lax.pmean` give apart, NaN returns of
    devices without an episode included, in one all-reduce where there are several devices."""
    keys = jax.random.split(jax.random.key(1), num_devices)

    def signals_and_tree(key):
        k1, k2, k3 = jax.random.split(key, 3)
        count = jax.random.randint(k1, (), 0, 3).astype(jnp.float32)
        signals = {
            "episode_return": jnp.where(count > 0, jax.random.normal(k2, ()), jnp.nan),
            "episode_count": count,
            "step": jnp.int32(7),
        }
        tree = {"w": jax.random.normal(k3, (3, 5)), "loss": jax.random.normal(k1, ())}
        return signals, tree

    signals, tree = jax.vmap(signals_and_tree)(keys)
    packed = jax.vmap(lambda s, t: sync_and_pmean(s, t, AXIS), axis_name=AXIS)
    apart = jax.vmap(lambda s, t: (sync(s, AXIS), jax.lax.pmean(t, AXIS)), axis_name=AXIS)
    got, want = packed(signals, tree), apart(signals, tree)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(g, w)
    if num_devices > 1:  # one psum in the per-device program
        one = jax.tree.map(lambda x: x[0], (signals, tree))
        jaxpr = jax.make_jaxpr(
            lambda s, t: sync_and_pmean(s, t, AXIS), axis_env=[(AXIS, num_devices)]
        )(*one)
        assert str(jaxpr).count("psum") == 1, str(jaxpr)
    with pytest.raises(ValueError, match="floating point, got int32"):
        jax.vmap(lambda s: sync_and_pmean(s, {"n": jnp.int32(1)}, AXIS), axis_name=AXIS)(signals)


@pytest.mark.parametrize("mapped", ["vmap", "pmap"])
def test_integer_means_are_floors_of_the_exact_mean_past_int32_sums(mapped):
    # The mean used to be the int32 sum (mod 2**32) floor-divided: 1.5e9 on two devices read
    # -647483648.
    per_device = {
        "step": jnp.array([1_500_000_000, 1_500_000_000], jnp.int32),
        "top": jnp.array([2**31 - 1, 2**31 - 2], jnp.int32),
        "bottom": jnp.array([-(2**31), -(2**31) + 3], jnp.int32),
        "small": jnp.array([-7, 2], jnp.int32),
        "flag": jnp.array([True, False]),
        "byte": jnp.array([255, 254], jnp.uint8),
        "kl": jnp.array([0.01, 0.03]),
    }
    mapper = jax.vmap if mapped == "vmap" else jax.pmap
    out = mapper(lambda s: sync(s, AXIS), axis_name=AXIS)(per_device)
    want = {
        "step": 1_500_000_000,
        "top": 2**31 - 2,
        "bottom": -(2**31) + 1,
        "small": -3,
        "flag": False,
        "byte": 254,
    }
    for k, v in want.items():
        assert out[k].dtype == per_device[k].dtype, k
        assert out[k].tolist() == [v, v], k
    np.testing.assert_allclose(out["kl"], [0.02, 0.02])
