"""`inject-rl train`: an agent's `train` around a run directory (`inject_rl.runs` writes it).

Nothing is written before the first host call returns: every input is validated and the program
is traced and compiled first, so a bad input (including a schedule reading a signal the agent
does not send, found at trace time) leaves no files behind. The run directory is locked from the
start (`runs.RunLock`, which creates it if needed and removes it again if nothing was written),
so two runs never write one directory.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from inject_rl import cache, envs, loops, runs
from inject_rl.agents._members import member_values
from inject_rl.agents._population import population_learner, train_population
from inject_rl.agents._train import Diverged, evaluate_params
from inject_rl.agents._train import learner as agent_learner
from inject_rl.cli import _extend
from inject_rl.cli._build import IDENTITY, Built


class NothingWritten(Exception):
    """Wraps a ValueError/TypeError raised before the run directory was touched."""


class TrainingFailed(RuntimeError):
    """An error after the run directory was written: a bug to report with its traceback."""


def check_out_dir(
    out: Path, record: dict[str, Any], resume: bool, overwrite: bool = False, locked: bool = False
) -> dict[str, Any] | None:
    """Checks that `out` may hold this run (`runs.check_run_dir`); returns the saved record
    when resuming. A resumed run may have another total of env steps (`--resume --steps N`:
    `_extend` decides whether it may); its host backend (`vectorization`) is part of its
    identity: switching it is refused, even sync <-> async, which give the same transitions."""
    if resume:
        saved = runs.read_json(out / runs.CONFIG)
        if isinstance(saved, dict) and isinstance(saved.get("config"), dict):
            config = {**record["config"], "total_steps": saved["config"].get("total_steps")}
            # A run from before the `vectorization` field ran on gymnasium's "sync" envs.
            if "vectorization" not in saved["config"] and config.get("vectorization") == "sync":
                del config["vectorization"]
            record = {**record, "config": config}
    return runs.check_run_dir(
        out, record, resume=resume, overwrite=overwrite, identity=IDENTITY, locked=locked
    )


@dataclasses.dataclass
class RunDir:
    """Where a run writes: `path`; with `numbered`, the first of `path`, `path-2`, `path-3`...
    that holds no run (`runs.claim_run_dir`), and `path` is set to it once claimed."""

    path: Path
    numbered: bool = False


def _state_template(built: Built) -> Any:
    """The abstract replicated training state of a freshly built run (nothing is computed)."""
    n = built.num_devices
    if built.population is not None:
        size, pbt = built.population
        values = member_values(built.agent, built.cfg, size, None)
        init, _ = population_learner(
            built.agent, built.cfg, values, built.make_optimizer, n, pbt=pbt, env=built.env
        )
    else:
        init = agent_learner(built.agent, built.cfg, built.optimizer, n, env=built.env)[1].init
    one = jax.eval_shape(init, jnp.zeros((), jnp.int32))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *x.shape), x.dtype), one)


# Why a multi-process run cannot be resumed (yet): process 0 alone writes the run directory.
MULTI_PROCESS_CHECKPOINT = (
    "a multi-process run cannot be resumed yet: its checkpoints hold process 0's devices only"
)


def check_resumable(built: Built) -> None:
    if jax.process_count() > 1:
        raise ValueError(f"--resume: {MULTI_PROCESS_CHECKPOINT}; start the run over")


def restore(built: Built, out: Path) -> tuple[int, Any, dict[str, Any]]:
    """The newest intact checkpoint's step, state (in this run's structure) and meta; one
    warning line on stderr for damaged newer ones (issue 12).

    Raises:
      ValueError: no intact checkpoint, a different state, or one beyond this run's total.
    """
    ckpt = runs.Checkpointer(out / runs.CHECKPOINTS)
    try:
        step, state, meta, skipped = ckpt.restore_newest(_state_template(built))
    except ValueError as e:
        # The directory holds this run's config.json: a run without --resume is refused there.
        raise ValueError(f"--resume: {e}; start the run again with --overwrite") from None
    finally:
        ckpt.close()
    if meta["next_call"] > built.cfg.num_calls:
        rows = meta.get("rows") or [{}]
        raise ValueError(
            f"--resume --steps {built.cfg.total_steps}: the run's checkpoint is at env step "
            f"{rows[-1].get('step')}, beyond that; give --steps at least that many"
        )
    if skipped:
        print(
            f"inject-rl: warning: {'; '.join(skipped)}; resuming from checkpoint {step}",
            file=sys.stderr,
        )
    # Host arrays -> one replica per learner device, as the loops hand states to callbacks
    # (the sebulba loop reads its state's device shards). An identity copy: bits unchanged.
    pick = loops.devices_for if built.loop == "anakin" else loops.learner_devices
    state = jax.pmap(lambda s: s, devices=pick(built.num_devices))(state)
    return step, state, meta


class _Run(runs.Run):
    """`runs.Run` for a built run (checkpoints every CHECKPOINT_SECONDS by default)."""

    def __init__(
        self,
        built: Built,
        out: Path,
        resumed: tuple[int, dict[str, Any]] | None,
        every_calls: int | None,
        quiet: bool,
        writes: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            out,
            built.record,
            num_calls=built.cfg.num_calls,
            steps_per_call=_steps_per_call(built.cfg),
            resumed=resumed,
            every_calls=every_calls,
            quiet=quiet,
            writes=writes,
            checkpoint_seconds=CHECKPOINT_SECONDS,
            **kwargs,
        )


def program_key(built: Built) -> str:
    """The program-cache key of a run: what config.json says the run is (agent, env, loop,
    devices, optimizer, --hp specs, the resolved config) plus `inject_rl.cache.fingerprint`'s
    code, library and jax settings. Hyperparameter values are part of it: init bakes them in."""
    keys = ("agent", "env", "loop", "devices", "opt", "hp", "config", "population")
    what = {k: built.record.get(k) for k in keys}
    what["env_code"] = env_code(built.record["env"])
    return cache.fingerprint("inject-rl train", json.dumps(what, sort_keys=True, default=repr))


def env_code(env_id: str) -> dict[str, str]:
    """Source digests of the modules that define `env_id`: a `module:Env-v0` id's module and the
    registered entry point's. An in-graph env is traced into the cached program, and one of a
    user's module is not in `fingerprint`'s packages: edited, it reran the old program."""
    modules = set()
    if ":" in env_id:
        modules.add(env_id.partition(":")[0])
    try:
        entry = envs.spec(env_id).entry_point
    except ValueError:  # a brax/* id: brax's version is in the fingerprint
        entry = None
    if isinstance(entry, str):
        modules.add(entry.partition(":")[0])
    elif callable(entry):
        modules.add(entry.__module__)
    return {m: cache.source_digest(m) for m in sorted(modules)}


def _steps_per_call(cfg: Any) -> int:
    if hasattr(cfg, "steps_per_iteration") and hasattr(cfg, "iterations_per_call"):
        return cfg.steps_per_iteration * cfg.iterations_per_call
    return max(1, cfg.total_steps // cfg.num_calls)


# Without --checkpoint-every, a checkpoint every this many seconds of wall time (and after the
# last call): see runs.CHECKPOINT_SECONDS.
CHECKPOINT_SECONDS = runs.CHECKPOINT_SECONDS


def every_calls(cfg: Any, checkpoint_every: int | None) -> int | None:
    """Host calls between checkpoints: `checkpoint_every` env steps rounded to whole calls
    (None: by time, every CHECKPOINT_SECONDS)."""
    if checkpoint_every is None:
        return None
    return max(1, round(checkpoint_every / _steps_per_call(cfg)))


# Exit status of a run whose loss or parameters turned non-finite (usage errors exit 2).
EXIT_DIVERGED = 3


def train(
    built: Built,
    out: Path | RunDir,
    *,
    resume: bool,
    checkpoint_every: int | None,
    eval_episodes: int,
    quiet: bool,
    overwrite: bool = False,
    extends: Built | None = None,
    loggers: Sequence[Any] = (),
) -> dict[str, Any]:
    """Runs the training; returns the summary.

    Args:
      built: the run.
      out: its directory (a `RunDir`: numbered, see there).
      resume: continue the run in `out` from its newest intact checkpoint.
      checkpoint_every: env steps between checkpoints (None: every CHECKPOINT_SECONDS).
      eval_episodes: greedy episodes for the summary's eval return.
      quiet: no progress output.
      overwrite: replace the run in `out`.
      extends: with `resume`, the run as it was built for its saved total of env steps, when
        `built` has another (`--resume --steps N`; refused when the programs differ).
      loggers: more destinations of the metrics rows (`runs.TensorBoard`, `runs.WandB`).

    Raises:
      NothingWritten: an error before any file was written.
      SystemExit: stopped by SIGINT/SIGTERM (status 130/143), after a checkpoint at the end of
        the current host call; one line on stderr says whether --resume can continue it. Or
        diverged (status EXIT_DIVERGED): no summary, no eval return, no checkpoint of the
        diverged state; one line says which checkpoint is the last finite one.
    """
    target = out if isinstance(out, RunDir) else RunDir(Path(out))
    out = target.path
    primary = jax.process_index() == 0  # only process 0 of a multi-process run writes
    lock = None
    run = None
    try:
        try:
            if resume:
                check_resumable(built)
            if primary and target.numbered:
                # The first free numbered directory, locked (creates it; removed again if
                # nothing is written): a concurrent run takes the next.
                lock = runs.claim_run_dir(out)
                target.path = out = lock.out
            elif primary:
                check_out_dir(out, built.record, resume, overwrite)  # reads only: a refusal
                lock = runs.RunLock(out).acquire()  # creates it, removed if nothing is written
            if primary:
                # Again under the lock: another run may have written `out` since.
                check_out_dir(out, built.record, resume, overwrite, locked=True)
            if resume and extends is not None:
                _extend.check_extension(built, extends)
            step, state, meta = restore(built, out) if resume else (None, None, None)
        except (ValueError, TypeError) as e:
            refused: Exception | None = e
        else:
            refused = None
        # Only process 0 checks the directory: the others learn of its refusal here instead of
        # waiting for it in their first collective until gloo times out.
        if loops.agreed(refused is not None) and refused is None:
            refused = ValueError(
                f"process 0 refused this run (its error says why); {out} untouched"
            )
        if refused is not None:
            raise NothingWritten(refused) from None
        if not quiet and primary and (note := rounding_note(built.cfg)) is not None:
            print(note, file=sys.stderr)
        stop = runs.StopSignals()
        run = _Run(
            built,
            out,
            (step, meta) if resume else None,
            every_calls(built.cfg, checkpoint_every),
            quiet or not primary,
            writes=primary,
            overwrite=overwrite,
            stop=stop,
            loggers=loggers,
        )
        return _run_training(built, out, run, stop, resume, state, meta, eval_episodes, primary)
    except KeyboardInterrupt as e:  # Stopped (a signal, at a call boundary) or a second one
        if run is not None:
            run.close()
        raise SystemExit(_stopped(e, run, out)) from None
    finally:
        if run is not None:
            run.close()
        if lock is not None:
            lock.release()  # removes the directory again if nothing was written


def rounding_note(cfg: Any) -> str | None:
    """One line when the total is not a whole number of host calls: the run trains to the end
    of the last one (config.json keeps the total asked for, summary.json the steps run)."""
    per_call = _steps_per_call(cfg)
    steps = cfg.num_calls * per_call
    if steps == cfg.total_steps:
        return None
    return (
        f"inject-rl: note: --steps {cfg.total_steps} trains {steps} env steps "
        f"(whole host calls of {per_call})"
    )


def _stopped(e: KeyboardInterrupt, run: runs.Run | None, out: Path) -> int:
    """Says how a stopped run can go on (--resume only when a checkpoint exists); returns the
    exit status."""
    status = e.exit_status if isinstance(e, runs.Stopped) else 130
    step = run.rows[-1]["step"] if run is not None and run.rows else 0
    saved = run is not None and run.writes and run.checkpoint is not None
    if saved and jax.process_count() > 1:
        text = f"stopped at env step {step} ({MULTI_PROCESS_CHECKPOINT})"
    elif saved:
        text = (
            f"stopped at env step {step} after checkpoint {run.checkpoint}; continue with "
            f"`inject-rl train --out {out} --resume`"
        )
    elif run is None or not run.started:
        text = "stopped before training started: nothing written"
    elif not run.writes:  # another process of a multi-process run writes the directory
        text = f"stopped at env step {step}"
    else:
        text = (
            f"stopped at env step {step} before any checkpoint: nothing to resume; start "
            "again with --overwrite"
        )
    print(f"\ninject-rl: {text}" if sys.stderr.isatty() else f"inject-rl: {text}", file=sys.stderr)
    return status


def _run_training(
    built: Built,
    out: Path,
    run: _Run,
    stop: runs.StopSignals,
    resume: bool,
    state: Any,
    meta: dict[str, Any] | None,
    eval_episodes: int,
    primary: bool,
) -> dict[str, Any]:
    kwargs = {
        "optimizer": built.optimizer,
        "num_devices": built.num_devices,
        "callback": run,
        "program_key": program_key(built),
    }
    if resume:
        kwargs["resume"] = (state, meta["next_call"])
    try:
        with stop:
            if built.population is None:
                result = built.agent.train(built.cfg, **kwargs)
            else:
                size, pbt = built.population
                kwargs["optimizer"] = built.make_optimizer
                result = train_population(built.agent, built.cfg, size=size, pbt=pbt, **kwargs)
    except Diverged as e:
        if not run.started:
            where = "nothing written"
        elif run.writes and run.checkpoint is not None:
            where = f"{out} keeps the last finite checkpoint ({run.checkpoint})"
        else:
            where = f"{out} holds no checkpoint of it"
        print(f"inject-rl: error: {e}; {where}", file=sys.stderr)
        raise SystemExit(EXIT_DIVERGED) from None
    except (ValueError, TypeError) as e:
        if not run.started:
            raise NothingWritten(e) from None
        raise TrainingFailed(f"training failed after writing to {out}: {e}") from e
    finally:
        run.close()
    if stop.received is not None:  # after the last call: stop before params and evaluation
        raise runs.Stopped(stop.received, run.checkpoint)
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
    population = {}
    try:
        if built.population is None:
            eval_return = built.agent.evaluate(result, episodes=eval_episodes)
        else:  # the best member's params are the run's
            cfg = result.member_config(result.best)
            eval_return = evaluate_params(built.agent, cfg, result.params, eval_episodes, 0)
    except loops.UnfinishedEvaluation as e:  # the training is done and saved all the same
        print(f"inject-rl: warning: no eval return: {e}", file=sys.stderr)
        eval_return = None
    if built.population is None:
        last = run.rows[-1] if run.rows else {}
    else:
        best = result.best
        last = next((r for r in reversed(run.rows) if r.get("member") == best), {})
        population = {
            "best_member": best,
            "best_values": {k: float(v[best]) for k, v in result.values.items()},
        }
    summary = {
        "eval_return": eval_return,
        "eval_episodes": eval_episodes,
        "steps": last.get("step", 0),
        "episode_return": last.get("episode_return"),
        "wall_s": run.wall_s(),
        "compile_s": result.compile_s,
        "train_s": result.train_s,
        "calls": len(run.rows) // (1 if built.population is None else built.population[0]),
        **population,
    }
    runs.write_json(out / runs.SUMMARY, summary)
    return summary
