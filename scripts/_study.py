"""Shared by the study scripts: many (optimizer, seed) runs of one agent as one vmapped program."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

import jax
import numpy as np

from inject_rl import envs, loops
from inject_rl.agents._train import learner
from inject_rl.loops._vectorized import run_batched, stack

SOLVED = 475.0


def run_group(agent, cfg, opts, seeds: int, label: str = ""):
    """Trains every optimizer in `opts` (identical state structure) for `seeds` seeds at once.

    Returns:
      `(evals, first_steps, metrics)`: greedy return after training `[len(opts), seeds]`; the
      first env step where the training return reached SOLVED (NaN if never), same shape; and
      the per-iteration metrics `[len(opts), seeds, iterations]`.
    """
    t0 = time.perf_counter()
    env = envs.make(cfg.env_id)
    states = []
    agent = agent.AGENT
    torso = agent.network(cfg, env.obs_shape)
    for seed in range(seeds):
        init = agent.anakin(dataclasses.replace(cfg, seed=seed), env, opts[0], 1, torso).init
        base = jax.jit(init)(0)
        for opt in opts:  # same program: only the initial optimizer state differs
            states.append(base._replace(opt_state=opt.init(base.params)))
    # Through the trainer's learner: its iterations report `step` and `hp/*` as `train`'s do.
    iteration = learner(agent, cfg, opts[0], 1, env=env)[1].iteration
    acting = agent.policy(cfg, env, torso)
    final, metrics, compile_s, run_s = run_batched(
        iteration, stack(states), cfg.num_iterations, chunk=cfg.iterations_per_call
    )
    params = getattr(final, "best_params", final.params)  # DQN keeps its best evaluated
    keys = jax.random.split(jax.random.key(1234), len(states))
    evals = np.asarray(
        jax.jit(
            jax.vmap(
                lambda p, k: loops.evaluate_policy(env, lambda obs: acting.greedy(p, obs), 20, k)
            )
        )(params, keys)
    )
    ret = np.nan_to_num(metrics["episode_return"], nan=-np.inf)
    hit = ret >= SOLVED
    first = np.where(hit.any(1), metrics["step"][np.arange(len(states)), hit.argmax(1)], np.nan)
    print(
        f"  {label}: compile {compile_s:.1f} s, run {run_s:.1f} s ({len(states)} runs vmapped),"
        f" total {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
        flush=True,
    )

    def shape(x):  # [seed, opt, ...] -> [opt, seed, ...]
        return np.asarray(x).reshape(seeds, len(opts), *np.shape(x)[1:]).swapaxes(0, 1)

    return shape(evals), shape(first), {k: shape(v) for k, v in metrics.items()}


def summary_row(evals: np.ndarray, first: np.ndarray) -> tuple[str, str]:
    """(solved fraction, median steps-to-solve) over all cells."""
    finite = first[np.isfinite(first)]
    med = f"{statistics.median(finite):,.0f}" if finite.size else "—"
    return f"{np.mean(evals >= SOLVED):.0%}", med
