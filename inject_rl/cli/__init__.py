"""The `inject-rl` command line: train, eval, plot and list.

    inject-rl train --agent ppo --env phys2d/CartPole-v1 \\
        --hp learning_rate='kl_target(3e-4, target=0.01)' --hp ent_coef=0.01
    inject-rl eval runs/ppo-phys2d-CartPole-v1-s0 --video videos
    inject-rl plot runs/ppo-phys2d-CartPole-v1-s0 runs/other --out compare.png
    inject-rl list

Without --out a run takes the first of runs/<agent>-<env>-s<seed>, ...-2, ...-3 that holds no
run, so a command can run again. Modules are imported when a command needs them: `list` and
`--help` read a stored listing (`_listing`) instead of importing jax and the agents.

Arguments are parsed before jax is used, so `--devices N` can give a CPU-only machine N fake
devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`). Bad input (an unknown name, a
malformed spec, an out-of-range value, an output directory holding another run...) gives one
line on stderr and exit status 2, and writes nothing. Sizes are held to documented maxima
before anything is allocated (`inject_rl.agents._common`: env steps per iteration, replay size,
layer widths, evaluation episodes...; `MAX_DEVICES` here). An error the run cannot survive
(a bug, out of memory) gives one line naming a log that holds the traceback, and exit status 1.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from inject_rl import agents
from inject_rl.cli._commands import check_int_flag, eval_, list_, plot
from inject_rl.cli._parser import UsageError, parser

EXIT_USAGE = 2
EXIT_FAILED = 1  # an error the run could not survive; the traceback is in a log
# --devices at most this many per process (a CPU-only machine fakes that many CPU devices:
# XLA takes minutes to create 1e5 of them).
MAX_DEVICES = 256


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _set_devices(n: int | None) -> None:
    """Fake CPU devices: must happen before jax initialises its backends."""
    if n is None or n <= 1:
        return
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")
    )
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _check_distributed(args, agent_name: str, env: str | None) -> bool:
    """Validates the multi-process flags; True when jax.distributed must be initialised."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if all(v is None for v in given):
        return False
    if any(v is None for v in given):
        raise UsageError("--coordinator, --num-processes and --process-id go together")
    host, sep, port = args.coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--coordinator must be HOST:PORT, got {args.coordinator!r}")
    if args.num_processes < 1:
        raise UsageError(f"--num-processes must be >= 1, got {args.num_processes}")
    if not 0 <= args.process_id < args.num_processes:
        raise UsageError(
            f"--process-id must be in [0, {args.num_processes}), got {args.process_id}"
        )
    if args.num_processes > 1:
        from inject_rl import envs
        from inject_rl.cli import _build as b

        # Processes join through the host loop (sebulba): its learner pmaps over every
        # process's devices. The anakin loop runs on one process's devices.
        env = env or b.default_env(agents.get(agent_name))
        if "sebulba" not in agents.get(agent_name).loops:
            raise UsageError(
                f"agent {agent_name} cannot train multi-process (it has no host loop); "
                f"multi-process agents: {', '.join(b.host_loop_agents()) or 'none yet'}"
            )
        if envs.is_jax_env(env):
            raise UsageError(
                f"multi-process training runs on the host loop (sebulba), but {env} is an "
                "in-graph env (anakin, one process); use a gymnasium host env id such as "
                "CartPole-v1, or --devices N on one process"
            )
        if args.resume:
            raise UsageError("--resume of a multi-process run is not supported yet")
    return True


def _init_distributed(args) -> None:
    from inject_rl import loops

    loops.init_distributed(args.coordinator, args.num_processes, args.process_id)


def _check_agent(name: str) -> None:
    if name not in agents.names():
        raise UsageError(f"unknown agent {name!r}; available: {', '.join(agents.names())}")


class Failed(Exception):
    """An error a run could not survive (`error`), raised while training into `run_dir`."""

    def __init__(self, error: BaseException, run_dir: Path | None = None):
        super().__init__(error)
        self.error, self.run_dir = error, run_dir


def default_out(agent_name: str, env: str | None, seed: int | None, overrides: Any) -> Path:
    """`runs/<agent>-<env>-s<seed>`: the env and seed given on the command line, else those of
    `--config`, else the agent's default env and seed 0."""
    from inject_rl.agents._common import MAX_SEED
    from inject_rl.cli import _build as b

    given = overrides if isinstance(overrides, dict) else {}
    env_name = env or given.get("env_id")
    if not isinstance(env_name, str) or not env_name:
        env_name = b.default_env(agents.get(agent_name))
    if seed is None:
        seed = given.get("seed", 0)
        # A bad seed is refused later (Config.validate), before anything is written; the name
        # must not be built from it (a 400-digit seed is no file name).
        valid = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
        seed = seed if valid else 0
    return Path("runs") / _sanitise(f"{agent_name}-{env_name}-s{seed}")


def _log_failure(e: Failed | Exception) -> Path | None:
    """Writes the traceback to `<run_dir>/error.log` when the run wrote its directory, else to a
    new file in the temporary directory; returns its path (None: nothing could be written)."""
    error = e.error if isinstance(e, Failed) else e
    text = "".join(traceback.format_exception(error))
    run_dir = e.run_dir if isinstance(e, Failed) else None
    try:
        if run_dir is not None:
            from inject_rl import runs  # imported already: the run claimed its directory

            if (run_dir / runs.CONFIG).is_file():
                log = run_dir / runs.ERROR_LOG
                log.write_text(text)
                return log
    except OSError:
        pass
    try:
        fd, name = tempfile.mkstemp(prefix="inject-rl-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Path(name)
    except OSError:
        return None


def _failed(e: Exception) -> int:
    """One line naming the error and the log holding its traceback; returns EXIT_FAILED."""
    error = e.error if isinstance(e, Failed) else e
    message = " ".join(str(error).split())
    message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(message) > 300:
        message = message[:297] + "..."
    log = _log_failure(e)
    where = f"; traceback in {log}" if log is not None else ""
    print(f"inject-rl: error: {message}{where}", file=sys.stderr)
    return EXIT_FAILED


def _loggers(args, saved: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """The loggers of --tensorboard and --wandb (with --resume, the run's own unless given),
    and config.json's record of them.

    Raises:
      ValueError: a logging library is missing (one line naming the extra to install).
    """
    from inject_rl import runs

    before = saved.get("logging") if isinstance(saved, dict) else None
    before = before if isinstance(before, dict) else {}
    tensorboard = args.tensorboard if args.tensorboard is not None else before.get("tensorboard")
    wandb = before.get("wandb") if isinstance(before.get("wandb"), dict) else None
    if args.wandb is not None and (wandb is None or wandb.get("project") != args.wandb):
        wandb = {"project": args.wandb, "id": secrets.token_hex(4)}  # a new W&B run
    loggers: list[Any] = []
    if tensorboard:
        loggers.append(runs.TensorBoard())
    if wandb is not None:
        loggers.append(runs.WandB(str(wandb.get("project")), str(wandb.get("id"))))
    return loggers, {"tensorboard": bool(tensorboard), "wandb": wandb}


def _population_spec(args) -> dict[str, Any] | None:
    """`--population N [--pbt a,b] [--pbt-interval K]` as `_build.build` takes it."""
    if args.population is None:
        if args.pbt is not None or args.pbt_interval is not None:
            raise UsageError("--pbt and --pbt-interval need --population N")
        return None
    names = None
    if args.pbt is not None:
        names = [n.strip() for n in args.pbt.split(",")]
        if not all(names):
            raise UsageError(f"--pbt must be comma-separated names, got {args.pbt[:80]!r}")
    return {"size": args.population, "pbt": names, "interval": args.pbt_interval}


def sweep_command(args) -> int:
    from inject_rl import runs
    from inject_rl.agents._common import MAX_INT, MAX_SEED
    from inject_rl.cli import _build as b
    from inject_rl.cli import _sweep

    for flag, value, low, high in (
        ("--devices", args.devices, 1, MAX_DEVICES),
        ("--steps", args.steps, 1, MAX_INT),
        ("--seed", args.seed, 0, MAX_SEED),
    ):
        check_int_flag(flag, value, low, high)
    _sweep.parse_grid(args.grid)  # one line before anything is imported or built
    overrides = {}
    if args.config is not None:
        if not Path(args.config).is_file():
            raise UsageError(f"--config: no such file {args.config!r}")
        try:
            overrides = runs.read_json(args.config)
        except ValueError as e:
            raise UsageError(f"--config: {e}") from None
    agent_name = args.agent or next(iter(agents.BUILTIN))
    _check_agent(agent_name)
    _set_devices(args.devices)
    from inject_rl import cache

    cache.enable()
    built = b.build(
        agent_name=agent_name,
        env_id=args.env,
        steps=args.steps,
        seed=args.seed,
        devices=args.devices,
        hp=b.parse_hp_args(args.hp),
        opt=args.opt,
        overrides=overrides,
        source=f"--config {args.config}" if args.config else "config",
    )
    return _sweep.command(args, built)


def _path(target: Any) -> Path:
    """The run directory of `_train.train`'s `out` (a `RunDir` knows it once claimed)."""
    return target if isinstance(target, Path) else target.path


def train_command(args) -> int:
    from inject_rl import runs
    from inject_rl.agents._common import MAX_EVAL_EPISODES, MAX_INT, MAX_SEED
    from inject_rl.cli import _build as b
    from inject_rl.cli import _train as t

    for flag, value, low, high in (
        ("--devices", args.devices, 1, MAX_DEVICES),
        ("--steps", args.steps, 1, MAX_INT),
        ("--seed", args.seed, 0, MAX_SEED),
        ("--eval-episodes", args.eval_episodes, 1, MAX_EVAL_EPISODES),
        ("--checkpoint-every", args.checkpoint_every, 1, MAX_INT),
        ("--num-processes", args.num_processes, 1, MAX_INT),
        ("--process-id", args.process_id, 0, MAX_INT),
        ("--population", args.population, 1, MAX_INT),
        ("--pbt-interval", args.pbt_interval, 1, MAX_INT),
    ):
        check_int_flag(flag, value, low, high)
    population = _population_spec(args)
    overrides = {}
    if args.config is not None:
        if not Path(args.config).is_file():
            raise UsageError(f"--config: no such file {args.config!r}")
        try:
            overrides = runs.read_json(args.config)
        except ValueError as e:
            raise UsageError(f"--config: {e}") from None
    agent_name, env, seed = args.agent or next(iter(agents.BUILTIN)), args.env, args.seed
    _check_agent(agent_name)
    out = Path(args.out) if args.out else default_out(agent_name, env, seed, overrides)
    # Without --out, a new run takes the first free of out, out-2, out-3... (`runs.claim_run_dir`).
    numbered = not (args.out or args.resume or args.overwrite)
    target = t.RunDir(out, numbered=True) if numbered else out
    hp = b.parse_hp_args(args.hp)
    saved = runs.read_json(out / runs.CONFIG) if args.resume else None
    was_distributed = saved.get("distributed") if isinstance(saved, dict) else None
    if isinstance(was_distributed, dict) and was_distributed.get("num_processes", 1) != 1:
        raise UsageError(
            f"--resume: {out}: {t.MULTI_PROCESS_CHECKPOINT}; start it over with --overwrite"
        )
    if isinstance(saved, dict):  # --resume: options not given come from the run's config.json
        agent_name = args.agent or saved.get("agent", agent_name)
        env = env or saved.get("env")
        seed = saved.get("seed") if seed is None else seed
        args.steps = saved.get("steps") if args.steps is None else args.steps
        args.devices = saved.get("devices") if args.devices is None else args.devices
        args.opt = args.opt or saved.get("opt")
        if args.checkpoint_every is None:
            args.checkpoint_every = saved.get("checkpoint_every")
        hp = hp or saved.get("hp", {})
        if args.vectorization is None and isinstance(saved.get("config"), dict):
            args.vectorization = saved["config"].get("vectorization")  # also under --config
        overrides = overrides if args.config is not None else saved.get("overrides", {})
        if population is None and isinstance(saved.get("population"), dict):
            was = saved["population"]
            pbt = was.get("pbt") if isinstance(was.get("pbt"), dict) else {}
            population = {
                "size": was.get("size"),
                "pbt": pbt.get("hyperparams"),
                "interval": pbt.get("interval"),
            }
    if args.vectorization is not None and isinstance(overrides, dict):  # a Config field
        overrides = {**overrides, "vectorization": args.vectorization}
    _check_agent(agent_name)
    distributed = _check_distributed(args, agent_name, env)
    # Before anything initialises jax's backends:
    if args.no_compile_cache:
        os.environ["INJECT_RL_COMPILE_CACHE"] = "off"
    _set_devices(args.devices)
    if distributed:
        _init_distributed(args)
    from inject_rl import cache

    cache.enable()  # before the first jax computation (the loops enable it too)
    loggers, logging = _loggers(args, saved)
    options = dict(
        agent_name=agent_name,
        env_id=env,
        seed=seed,
        # Several processes: --devices is per process (XLA_FLAGS); the learner takes them all.
        devices=None if distributed and args.num_processes > 1 else args.devices,
        hp=hp,
        opt=args.opt,
        overrides=overrides,
        source=f"--config {args.config}" if args.config else "config",
        population=population,
    )
    built = b.build(steps=args.steps, **options)
    extends = None
    if isinstance(saved, dict) and saved.get("steps") != built.record["steps"]:
        # --resume --steps N: the run as built for its own total, to compare programs with.
        extends = b.build(steps=saved.get("steps"), **options)
    built.record["checkpoint_every"] = args.checkpoint_every
    built.record["logging"] = logging
    if distributed:
        built.record["distributed"] = {"num_processes": args.num_processes}
    try:
        summary = t.train(
            built,
            target,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            eval_episodes=args.eval_episodes,
            quiet=args.quiet,
            overwrite=args.overwrite,
            extends=extends,
            loggers=loggers,
        )
    except t.NothingWritten as e:
        raise UsageError(str(e.args[0])) from None
    except Exception as e:  # a bug or out of memory: one line and a log, never exit 0
        import jax

        # Only process 0 writes (and has checked and locked) the run directory.
        raise Failed(e, _path(target) if jax.process_index() == 0 else None) from None
    text = (
        f"done: {summary['steps']} env steps in {summary['wall_s']:.1f} s (compile "
        f"{summary['compile_s']:.1f} s)"
    )
    if summary["eval_return"] is not None:
        text += (
            f"; eval return {summary['eval_return']:.1f} over {summary['eval_episodes']} "
            f"episodes; run directory {_path(target)}"
        )
    elif summary["eval_episodes"]:  # process 0, its evaluation unfinished (warned)
        text += f"; no eval return; run directory {_path(target)}"
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `inject-rl` console script; returns the exit status."""
    commands = {
        "train": train_command,
        "sweep": sweep_command,
        "eval": eval_,
        "plot": plot,
        "list": list_,
    }
    try:
        args = parser().parse_args(argv)
        return commands[args.command](args)
    except (UsageError, ValueError, TypeError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"inject-rl: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `inject-rl list | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0
    except KeyboardInterrupt:
        print("\ninject-rl: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # neither bad input nor an interruption: a bug, out of memory...
        return _failed(e)


def run() -> None:
    """The `inject-rl` console script (and `python -m inject_rl.cli`): `main()`, then a fast exit.

    Once `main` has returned (its files closed, its threads joined), the process ends with
    `os._exit` from the last exit handler, skipping the interpreter's module teardown: with
    jax, haiku, flax and tensorflow-probability loaded that teardown takes about 0.3 s, a
    tenth of a warm 1e5-step training run (scripts/bench_startup.py). Every other exit handler
    runs first: ours is registered before jax and the other libraries are imported, and
    handlers run last-registered first. An uncaught exception exits the ordinary way.
    In-process callers use `main`.
    """
    import atexit

    status: list[int] = []

    def fast_exit() -> None:
        if not status:  # main did not return: leave the exit to Python
            return
        if "logging" in sys.modules:  # its own handler may be registered after this one
            sys.modules["logging"].shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status[0])

    atexit.register(fast_exit)
    status.append(main())
    sys.exit(status[0])


if __name__ == "__main__":
    run()
