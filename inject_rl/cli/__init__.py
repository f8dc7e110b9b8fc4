"""The `inject-rl` command line: train, eval, plot and list.

    inject-rl train --agent ppo --env phys2d/CartPole-v1 \\
        --hp learning_rate='kl_target(3e-4, target=0.01)' --hp ent_coef=0.01
    inject-rl eval runs/ppo-phys2d-CartPole-v1-s0
    inject-rl plot runs/ppo-phys2d-CartPole-v1-s0 runs/other --out compare.png
    inject-rl list

Arguments are parsed before jax is used, so `--devices N` can give a CPU-only machine N fake
devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`). Bad input (an unknown name, a
malformed spec, an out-of-range value, an output directory holding another run...) gives one
line on stderr and exit status 2, and writes nothing.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from inject_rl import agents
from inject_rl.cli._commands import eval_, list_, plot
from inject_rl.cli._parser import UsageError, parser

EXIT_USAGE = 2


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


def train_command(args) -> int:
    from inject_rl import runs
    from inject_rl.cli import _build as b
    from inject_rl.cli import _train as t

    for flag, value, low in (
        ("--devices", args.devices, 1),
        ("--steps", args.steps, 1),
        ("--eval-episodes", args.eval_episodes, 1),
        ("--checkpoint-every", args.checkpoint_every, 1),
    ):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be >= {low}, got {value}")
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
    out = Path(args.out) if args.out else None
    if out is None:
        env_name = env or (overrides.get("env_id") if isinstance(overrides, dict) else None)
        env_name = env_name or b.default_env(agents.get(agent_name))
        out = Path("runs") / _sanitise(f"{agent_name}-{env_name}-s{0 if seed is None else seed}")
    hp = b.parse_hp_args(args.hp)
    saved = runs.read_json(out / runs.CONFIG) if args.resume else None
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
        overrides = overrides if args.config is not None else saved.get("overrides", {})
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
    built = b.build(
        agent_name=agent_name,
        env_id=env,
        steps=args.steps,
        seed=seed,
        # Several processes: --devices is per process (XLA_FLAGS); the learner takes them all.
        devices=None if distributed and args.num_processes > 1 else args.devices,
        hp=hp,
        opt=args.opt,
        overrides=overrides,
        source=f"--config {args.config}" if args.config else "config",
    )
    built.record["checkpoint_every"] = args.checkpoint_every
    if distributed:
        built.record["distributed"] = {"num_processes": args.num_processes}
    try:
        summary = t.train(
            built,
            out,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            eval_episodes=args.eval_episodes,
            quiet=args.quiet,
            overwrite=args.overwrite,
        )
    except t.NothingWritten as e:
        raise UsageError(str(e.args[0])) from None
    text = (
        f"done: {summary['steps']} env steps in {summary['wall_s']:.1f} s (compile "
        f"{summary['compile_s']:.1f} s)"
    )
    if summary["eval_return"] is not None:
        text += (
            f"; eval return {summary['eval_return']:.1f} over {summary['eval_episodes']} "
            f"episodes; run directory {out}"
        )
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `inject-rl` console script; returns the exit status."""
    commands = {"train": train_command, "eval": eval_, "plot": plot, "list": list_}
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
