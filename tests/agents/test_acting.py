"""The actor's sampling fast path is bitwise the distrax distribution it replaces."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inject_rl.agents._actor_critic_policy import _categorical_sample


@jax.jit
def _distrax_sample(logits, key):
    return distrax.Categorical(logits=logits).sample_and_log_prob(seed=key)


@pytest.mark.parametrize("shape", [(8, 2), (5, 3, 7), (1, 18)])
def test_categorical_sample_is_bitwise_distrax(shape):
    keys = jax.random.split(jax.random.key(0), 8)
    for i, key in enumerate(keys):
        logits = 3.0 * jax.random.normal(jax.random.fold_in(key, 1), shape)
        if i % 4 == 0:  # near-deterministic rows too
            logits = logits.at[..., 0].add(40.0)
        want_a, want_lp = _distrax_sample(logits, key)
        got_a, got_lp = jax.jit(_categorical_sample)(logits, key)
        assert got_a.dtype == jnp.int32 and got_a.shape == shape[:-1]
        np.testing.assert_array_equal(got_a, want_a.astype(jnp.int32))
        np.testing.assert_array_equal(got_lp, want_lp)


def test_categorical_sample_draws_every_action():
    logits = jnp.zeros((4096, 3))
    action, log_prob = _categorical_sample(logits, jax.random.key(1))
    counts = np.bincount(np.asarray(action), minlength=3)
    assert counts.min() > 1200, counts  # ~1365 each
    np.testing.assert_allclose(log_prob, np.log(1 / 3), rtol=1e-6)
