"""`local_replicas`, the one reader of this process's replicas (issue 11 item 7): used by
`unreplicate`, `replicas_equal`, `first_replica` and checkpoints' `host_copy`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from inject_rl import loops, runs

ALONG = P("d")  # sharded along the leading (device) axis


def sharded(x, devices, spec=ALONG):
    return jax.device_put(x, NamedSharding(Mesh(devices, ("d",)), spec))


@pytest.mark.parametrize("order", [1, -1], ids=["mesh-order", "reversed-mesh"])
def test_replicas_come_in_device_axis_order(order):
    devices = jax.devices()[:4][::order]
    host = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    x = sharded(host, devices)
    got = loops.local_replicas(x)
    assert isinstance(got, np.ndarray) and np.array_equal(got, host)
    first = loops.local_replicas(x, first_only=True)
    assert isinstance(first, np.ndarray) and np.array_equal(first, host[0])


def test_a_shard_holding_the_whole_axis_is_read_once():
    host = np.arange(6, dtype=np.int32).reshape(2, 3)
    x = sharded(host, jax.devices()[:2], P())  # every device holds all of it
    assert np.array_equal(loops.local_replicas(x), host)
    assert np.array_equal(loops.local_replicas(jnp.asarray(host)), host)  # one device
    assert np.array_equal(loops.local_replicas(host, first_only=True), host[0])  # numpy
    assert loops.local_replicas(jnp.float32(2.5)) == 2.5  # 0-d: no device axis


def test_typed_keys_stay_keys():
    keys = jax.random.split(jax.random.key(0), 4)
    x = sharded(keys, jax.devices()[:4])
    got = loops.local_replicas(x)
    assert jax.dtypes.issubdtype(got.dtype, jax.dtypes.prng_key)
    assert np.array_equal(jax.random.key_data(got), jax.random.key_data(keys))
    first = loops.local_replicas(x, first_only=True)
    assert np.array_equal(jax.random.key_data(first), jax.random.key_data(keys[0]))


def test_every_reader_goes_through_it():
    state = {
        "w": sharded(np.ones((2, 3), np.float32), jax.devices()[:2]),
        "key": sharded(jax.random.split(jax.random.key(1), 2), jax.devices()[:2]),
    }
    first = loops.unreplicate(state)
    assert np.array_equal(first["w"], np.ones(3)) and first["key"].shape == ()
    again = loops.first_replica(state)
    assert np.array_equal(again["w"], first["w"])
    assert np.array_equal(jax.random.key_data(again["key"]), jax.random.key_data(first["key"]))
    assert loops.replicas_equal(state["w"]) and not loops.replicas_equal(state["key"])
    arrays, layout = runs.host_copy(state)
    assert [a.shape for a in arrays] == [(2, 2), (2, 3)] and layout["keys"] == {"0": "threefry2x32"}
