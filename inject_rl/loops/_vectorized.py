"""Many independent runs of one learner at once: `vmap` over a batch of training states.

Because hyperparameter values and schedule constants live in the optimizer state, runs that
differ in seed, learning rate or schedule constants share one compiled program: stack their
initial states and `vmap` the iteration over them (purejaxrl's trick, here for hyperparameters
too). Used by the robustness studies in `scripts/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from inject_rl import cache


def stack(states: list[Any]) -> Any:
    """Stacks identically-structured pytrees along a new leading axis (typed keys included)."""
    structures = {jax.tree.structure(s) for s in states}
    if len(structures) != 1:
        raise ValueError(f"stack: states differ in structure: {structures}")
    return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *states)


def run_batched(
    iteration: Callable[[Any, str | None], tuple[Any, dict[str, jax.Array]]],
    states: Any,
    num_iterations: int,
    *,
    chunk: int = 50,
) -> tuple[Any, dict[str, np.ndarray], float, float]:
    """Runs `num_iterations` iterations of every run in the batch `states` (leading axis R).

    Args:
      iteration: an agent's anakin iteration; called with `axis_name=None` (runs are independent:
        nothing is reduced across the batch).
      states: stacked initial states, e.g. from `stack`.
      num_iterations: iterations per run; executed as compiled calls of `chunk` iterations.
      chunk: iterations per compiled call (bounds host memory of the metrics).

    Returns:
      `(states, metrics, compile_s, run_s)`, metrics as `[R, num_iterations]` numpy arrays.
    """
    if num_iterations % chunk:
        chunk = next(c for c in range(min(chunk, num_iterations), 0, -1) if num_iterations % c == 0)
    cache.enable()

    def call(states):
        def body(s, _):
            return jax.vmap(lambda x: iteration(x, None))(s)

        states, metrics = jax.lax.scan(body, states, None, length=chunk)
        return states, jax.tree.map(lambda m: m.swapaxes(0, 1), metrics)

    t = time.perf_counter()
    compiled = jax.jit(call, donate_argnums=0).lower(states).compile()
    compile_s = time.perf_counter() - t
    history = []
    t = time.perf_counter()
    for _ in range(num_iterations // chunk):
        states, metrics = compiled(states)
        history.append(jax.device_get(metrics))
    run_s = time.perf_counter() - t
    merged = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[0]}
    return states, merged, compile_s, run_s
