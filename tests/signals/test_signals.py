"""EpisodeStats and sync semantics."""

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
