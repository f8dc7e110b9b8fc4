"""EpisodeStats and sync semantics."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl.signals import SIGNAL_NAMES, EpisodeStats, sync


def test_episode_stats_counts_finished_episodes_in_window():
    stats = EpisodeStats.init(3)
    rewards = jnp.ones((6, 3))
    dones = jnp.zeros((6, 3), bool).at[1, 0].set(True).at[4, 0].set(True).at[5, 2].set(True)
    stats = jax.jit(EpisodeStats.update)(stats, rewards, dones)
    summary = EpisodeStats.summary(stats)
    # env 0: episodes of length 2 and 3; env 2: length 6.
    assert float(summary["episode_count"]) == 3
    np.testing.assert_allclose(summary["episode_return"], (2 + 3 + 6) / 3)
    np.testing.assert_allclose(summary["episode_length"], (2 + 3 + 6) / 3)
    np.testing.assert_array_equal(stats.running_return, [1.0, 6.0, 0.0])
    stats = EpisodeStats.new_window(stats)
    s = EpisodeStats.summary(stats)
    assert float(s["episode_count"]) == 0 and np.isnan(s["episode_return"])
    stats = EpisodeStats.update(stats, jnp.array([2.0, 0.5, 1.0]), jnp.array([True, True, False]))
    np.testing.assert_allclose(EpisodeStats.summary(stats)["episode_return"], (3 + 6.5) / 2)


def test_episode_stats_rejects_bad_num_envs():
    with pytest.raises(ValueError, match="num_envs"):
        EpisodeStats.init(0)


def test_sync_weighting_and_nan_from_idle_device():
    per_device = {
        "episode_return": jnp.array([10.0, jnp.nan, 40.0]),
        "episode_length": jnp.array([5.0, jnp.nan, 20.0]),
        "episode_count": jnp.array([3.0, 0.0, 1.0]),
        "kl": jnp.array([0.0, 0.03, 0.03]),
        "step": jnp.array([8, 8, 8], jnp.int32),
    }
    out = jax.pmap(lambda s: sync(s, "d"), axis_name="d", devices=jax.devices()[:3])(per_device)
    np.testing.assert_allclose(out["episode_return"], [17.5] * 3)
    np.testing.assert_allclose(out["episode_length"], [8.75] * 3)
    np.testing.assert_allclose(out["episode_count"], [4.0] * 3)
    np.testing.assert_allclose(out["kl"], [0.02] * 3, rtol=1e-6)
    assert out["step"].dtype == jnp.int32 and out["step"].tolist() == [8, 8, 8]


def test_sync_all_idle_gives_nan_and_zero_count():
    per_device = {
        "episode_return": jnp.array([jnp.nan, jnp.nan]),
        "episode_count": jnp.array([0.0, 0.0]),
    }
    out = jax.vmap(lambda s: sync(s, "d"), axis_name="d")(per_device)
    assert np.all(np.isnan(out["episode_return"])) and out["episode_count"].tolist() == [0, 0]


def test_sync_without_axis_is_identity_and_needs_count():
    s = {"kl": jnp.float32(0.1)}
    assert sync(s, None) == s
    with pytest.raises(ValueError, match="episode_count"):
        jax.vmap(lambda r: sync({"episode_return": r}, "d"), axis_name="d")(jnp.ones(2))


def test_signal_names_are_the_documented_ones():
    assert set(SIGNAL_NAMES) == {
        "episode_return",
        "episode_count",
        "episode_length",
        "kl",
        "entropy",
        "loss",
        "value_loss",
        "grad_norm",
        "td_error",
        "step",
    }


def _per_device_signals(n: int) -> dict[str, jnp.ndarray]:
    """Signals of every kind `sync` handles, differing per device: episode statistics with idle
    (NaN) devices, floats of several dtypes and shapes, integers near int32's limits (their sum
    would wrap), bools."""
    rng = np.random.default_rng(n)
    count = np.array([0.0, 3.0, 1.0, 0.0][:n], np.float32)
    ret = np.where(count > 0, rng.normal(size=n) * 100, np.nan).astype(np.float32)
    return {
        "episode_return": jnp.asarray(ret),
        "episode_length": jnp.asarray(
            np.where(count > 0, 20.0 + np.arange(n), np.nan), jnp.float32
        ),
        "episode_count": jnp.asarray(count),
        "kl": jnp.asarray(rng.uniform(size=n), jnp.float32),
        "loss": jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
        "entropy": jnp.asarray(rng.uniform(size=n), jnp.bfloat16),
        "step": jnp.asarray([2**31 - 5, 2**31 - 7, -(2**24) - 3, 12345][:n], jnp.int32),
        "small": jnp.asarray([-3, 7, 1, -128][:n], jnp.int8),
        "flag": jnp.asarray([True, False, True, True][:n]),
    }


@pytest.mark.parametrize("n", [2, 3, 4], ids=["2dev", "3dev", "4dev"])
def test_packed_sync_keeps_the_per_signal_semantics(n):
    """One packed all-reduce gives what one collective per signal gives (issue 16 item 1):
    integer means exact floors (sums past int32 included), weighting and NaN handling."""
    from inject_rl.signals._sync import _each

    per_device = _per_device_signals(n)
    stats = ["episode_return", "episode_length"]
    pmapped = lambda f: jax.pmap(f, axis_name="d", devices=jax.devices()[:n])  # noqa: E731
    got = pmapped(lambda s: sync(s, "d"))(per_device)
    want = pmapped(lambda s: _each(s, stats, "d"))(per_device)
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        if jnp.issubdtype(want[k].dtype, jnp.inexact):
            np.testing.assert_allclose(
                np.asarray(got[k], np.float32),
                np.asarray(want[k], np.float32),
                rtol=1e-6,
                err_msg=k,
            )
        else:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert _replicas_equal(got)


def _replicas_equal(tree) -> bool:
    return all(
        all(np.array_equal(x[0], x[i], equal_nan=True) for i in range(1, x.shape[0]))
        for x in map(np.asarray, jax.tree.leaves(tree))
    )


def test_sync_with_an_integer_count():
    per_device = {
        "episode_return": jnp.array([10.0, 40.0]),
        "episode_count": jnp.array([3, 1], jnp.int32),
    }
    out = jax.pmap(lambda s: sync(s, "d"), axis_name="d", devices=jax.devices()[:2])(per_device)
    assert out["episode_count"].dtype == jnp.int32 and out["episode_count"].tolist() == [4, 4]
    np.testing.assert_allclose(out["episode_return"], [17.5, 17.5])


def test_sync_is_one_all_reduce():
    """Every signal in one buffer: one all-reduce in the lowered program, however many signals
    (before: one per signal and two for the episode count)."""
    lowered = jax.pmap(lambda s: sync(s, "d"), axis_name="d", devices=jax.devices()[:2]).lower(
        _per_device_signals(2)
    )
    assert len(re.findall(r"all_reduce", lowered.as_text())) == 1
