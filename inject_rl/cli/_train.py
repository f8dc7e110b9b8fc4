"""`inject-rl train`: the run directory, progress, metrics, checkpoints and resume around an
agent's `train`.

Nothing is written before the first host call returns: every input is validated and the program
is traced and compiled first, so a bad input (including a schedule reading a signal the agent
does not send, found at trace time) leaves no files behind.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from inject_rl import cache, loops, runs
from inject_rl.agents._train import learner as agent_learner
from inject_rl.cli._build import Built, same_run


class NothingWritten(Exception):
    """Wraps a ValueError/TypeError raised before the run directory was touched."""


class TrainingFailed(RuntimeError):
    """An error after the run directory was written: a bug to report with its traceback."""


def check_out_dir(out: Path, record: dict[str, Any], resume: bool) -> dict[str, Any] | None:
    """Checks that `out` may hold this run; returns the saved record when resuming."""
    saved = runs.read_json(out / runs.CONFIG)
    if saved is not None and not isinstance(saved, dict):
        raise ValueError(f"{out / runs.CONFIG} is not a run config")
    if saved is not None:
        diff = same_run(saved, record)
        if diff:
            raise ValueError(
                f"{out} holds a different run ({runs.CONFIG} differs in {', '.join(diff)}); "
                "choose another --out or remove that directory"
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and holds no {runs.CONFIG}; choose another --out")
    if resume and (
        saved is None or runs.Checkpointer(out / runs.CHECKPOINTS).latest_step() is None
    ):
        raise ValueError(f"--resume: no checkpoint in {out}; train without --resume to start")
    return saved


def _state_template(built: Built) -> Any:
    """The abstract replicated training state of a freshly built run (nothing is computed)."""
    n = built.num_devices
    _, learner = agent_learner(built.agent, built.cfg, built.optimizer, n, env=built.env)
    one = jax.eval_shape(learner.init, jnp.zeros((), jnp.int32))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *x.shape), x.dtype), one)


def check_resumable(built: Built) -> None:
    if jax.process_count() > 1:
        raise ValueError(
            "--resume of a multi-process run is not supported yet; resume on one "
            "process, or start the run over"
        )


def restore(built: Built, out: Path) -> tuple[Any, dict[str, Any]]:
    """The latest checkpoint's state (in this run's structure) and meta."""
    ckpt = runs.Checkpointer(out / runs.CHECKPOINTS)
    try:
        state, meta = ckpt.restore(ckpt.latest_step(), _state_template(built))
    finally:
        ckpt.close()
    # Host arrays -> one replica per learner device, as the loops hand states to callbacks
    # (the sebulba loop reads its state's device shards). An identity copy: bits unchanged.
    pick = loops.devices_for if built.loop == "anakin" else loops.learner_devices
    state = jax.pmap(lambda s: s, devices=pick(built.num_devices))(state)
    return state, meta


class _Run:
    """The callback given to the agent's `train`: rows, progress, checkpoints."""

    def __init__(
        self,
        built: Built,
        out: Path,
        resumed: dict[str, Any] | None,
        every_calls: int | None,
        quiet: bool,
        writes: bool = True,
    ):
        self.built, self.out, self.every = built, out, every_calls
        self.writes = writes  # False on the other processes of a multi-process run
        self.rows: list[dict[str, Any]] = list(resumed["rows"]) if resumed else []
        self.wall0 = float(resumed["wall_s"]) if resumed else 0.0
        self.resumed = resumed is not None
        self.num_calls = built.cfg.num_calls
        self.started = False
        self.t0 = self.last_save = time.perf_counter()
        if writes:  # orbax (0.13 s of imports) loads while the program compiles and trains
            threading.Thread(target=runs.preload, daemon=True).start()
        total = built.cfg.num_calls * _steps_per_call(built.cfg)
        self.progress = None if quiet else runs.Progress(total)

    def start(self) -> None:
        """Creates the directory (first host call done: inputs and program are valid)."""
        self.started = True
        if not self.writes:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.resumed:  # the same run started over: drop the old one's outputs
            for name in (runs.CHECKPOINTS, runs.PARAMS, runs.TENSORBOARD):
                shutil.rmtree(self.out / name, ignore_errors=True)
            (self.out / runs.SUMMARY).unlink(missing_ok=True)
        runs.write_json(self.out / runs.CONFIG, self.built.record)
        self.writer = runs.MetricsWriter(self.out / runs.METRICS, self.rows)
        self.tb = runs.TensorBoard(self.out / runs.TENSORBOARD)
        self.ckpt = runs.Checkpointer(self.out / runs.CHECKPOINTS)

    def wall_s(self) -> float:
        return self.wall0 + time.perf_counter() - self.t0

    def __call__(self, call: int, metrics: dict[str, Any], state: Any = None) -> None:
        if not self.started:
            self.start()
        row = {"step": 0, "wall_s": self.wall_s(), **runs.summarize_call(metrics)}
        self.rows.append(row)
        if self.progress is not None:
            self.progress.update(row)
        if not self.writes:
            return
        self.writer.write(row)
        self.tb.write(row)
        done = call + 1
        if self.every is None:
            due = time.perf_counter() - self.last_save >= CHECKPOINT_SECONDS
        else:
            due = done % self.every == 0
        if state is not None and (due or done == self.num_calls):
            # `state` is donated to the next call: `save` copies it to the host first.
            self.ckpt.save(
                done,
                state,
                {"next_call": done, "rows": runs.json_safe(self.rows), "wall_s": row["wall_s"]},
            )
            self.last_save = time.perf_counter()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.started and self.writes:
            self.writer.close()
            self.tb.close()
            self.ckpt.close()


def program_key(built: Built) -> str:
    """The program-cache key of a run: what config.json says the run is (agent, env, loop,
    devices, optimizer, --hp specs, the resolved config) plus `inject_rl.cache.fingerprint`'s
    code, library and jax settings. Hyperparameter values are part of it: init bakes them in."""
    keys = ("agent", "env", "loop", "devices", "opt", "hp", "config")
    what = {k: built.record.get(k) for k in keys}
    return cache.fingerprint("inject-rl train", json.dumps(what, sort_keys=True, default=repr))


def _steps_per_call(cfg: Any) -> int:
    if hasattr(cfg, "steps_per_iteration") and hasattr(cfg, "iterations_per_call"):
        return cfg.steps_per_iteration * cfg.iterations_per_call
    return max(1, cfg.total_steps // cfg.num_calls)


# Without --checkpoint-every, a checkpoint is written when this many seconds of wall time have
# passed since the last one (and after the last call): an orbax save of a small state takes
# about 0.08 s on 2 CPU cores, so this keeps saving under 1% of a run however short its calls.
CHECKPOINT_SECONDS = 30.0


def every_calls(cfg: Any, checkpoint_every: int | None) -> int | None:
    """Host calls between checkpoints: `checkpoint_every` env steps rounded to whole calls
    (None: by time, every CHECKPOINT_SECONDS)."""
    if checkpoint_every is None:
        return None
    return max(1, round(checkpoint_every / _steps_per_call(cfg)))


def train(
    built: Built,
    out: Path,
    *,
    resume: bool,
    checkpoint_every: int | None,
    eval_episodes: int,
    quiet: bool,
) -> dict[str, Any]:
    """Runs the training; returns the summary. Raises NothingWritten for errors before any file
    was written."""
    primary = jax.process_index() == 0  # only process 0 of a multi-process run writes
    try:
        if resume:
            check_resumable(built)
        check_out_dir(out, built.record, resume)
        state, meta = restore(built, out) if resume else (None, None)
    except (ValueError, TypeError) as e:
        raise NothingWritten(e) from None
    run = _Run(
        built,
        out,
        meta,
        every_calls(built.cfg, checkpoint_every),
        quiet or not primary,
        writes=primary,
    )
    kwargs = {
        "optimizer": built.optimizer,
        "num_devices": built.num_devices,
        "callback": run,
        "program_key": program_key(built),
    }
    if resume:
        kwargs["resume"] = (state, meta["next_call"])
    try:
        result = built.agent.train(built.cfg, **kwargs)
    except (ValueError, TypeError) as e:
        if not run.started:
            raise NothingWritten(e) from None
        raise TrainingFailed(f"training failed after writing to {out}: {e}") from e
    finally:
        run.close()
    if not run.started:  # resumed a finished run: no call left
        run.start()
        run.close()
    if not primary:
        return {
            "steps": run.rows[-1]["step"] if run.rows else 0,
            "wall_s": run.wall_s(),
            "compile_s": result.compile_s,
            "eval_return": None,
            "eval_episodes": 0,
        }
    runs.save_params(out / runs.PARAMS, result.params)
    eval_return = built.agent.evaluate(result, episodes=eval_episodes)
    last = run.rows[-1] if run.rows else {}
    summary = {
        "eval_return": eval_return,
        "eval_episodes": eval_episodes,
        "steps": last.get("step", 0),
        "episode_return": last.get("episode_return"),
        "wall_s": run.wall_s(),
        "compile_s": result.compile_s,
        "train_s": result.train_s,
        "calls": len(run.rows),
    }
    runs.write_json(out / runs.SUMMARY, summary)
    return summary
