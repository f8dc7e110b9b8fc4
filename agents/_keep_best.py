"""Keeping the best params of periodic in-graph greedy evaluations (SB3's EvalCallback).

With DQN's defaults (1-step returns, no LayerNorm) on CartPole the greedy return swings between
500 and ~100 throughout training, whatever the learning rate or target period (measured). So by
default (`eval_every > 0`) DQN keeps the best params of periodic greedy evaluations; the
evaluation episodes are not training steps (its metric `eval_steps` counts them). With 3-step
returns, LayerNorm and a learning rate annealed over time (the host CartPole-v1 preset,
issue 13) the final params solve the task on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from inject_rl import loops
from inject_rl.signals import sync


def evaluate_and_keep(
    ts: Any,
    due: jax.Array,
    env: Any,
    greedy: Callable[[Any, jax.Array], jax.Array],
    episodes: int,
    axis_name: str | None,
) -> tuple[Any, jax.Array]:
    """When `due`, runs `episodes` greedy episodes of `ts.params` per device (mean synced over
    devices) and keeps the params in `ts.best_params` when they score at least
    `ts.best_return`. `ts` needs `params`, `key`, `best_params` and `best_return` fields.

    Returns:
      `(ts, eval_return)`; the return is NaN when no evaluation was due.
    """

    def evaluate(ts):
        key, k_eval = jax.random.split(ts.key)
        ret = loops.evaluate_policy(env, lambda obs: greedy(ts.params, obs), episodes, k_eval)
        ret = sync({"eval_return": ret}, axis_name)["eval_return"]
        better = ret >= ts.best_return  # ties: prefer the later, longer-trained params
        best = jax.tree.map(lambda p, b: jnp.where(better, p, b), ts.params, ts.best_params)
        best_return = jnp.where(better, ret, ts.best_return)
        return ts._replace(key=key, best_params=best, best_return=best_return), ret

    return jax.lax.cond(due, evaluate, lambda t: (t, jnp.full((), jnp.nan, jnp.float32)), ts)
