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

import argparse
import os
import re
import sys
from pathlib import Path

from agents import AGENTS

EXIT_USAGE = 2


class UsageError(Exception):
    """A user error: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump)."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


_HP_HELP = """\
hyperparameter NAME=SPEC (repeatable). SPEC is a number (a constant) or a schedule call:
  learning_rate='kl_target(3e-4, target=0.01)', b1='plateau(0.9, factor=1.05, max_value=0.99)',
  ent_coef='progress(0.01, 0.0, low=0, high=500)', learning_rate=3e-4.
NAME is an injectable Config field of the agent (ppo: learning_rate, ent_coef, clip_eps; dqn:
learning_rate, epsilon), a numeric parameter of the optimizer (adam: b1, b2, eps...; sgd:
momentum; rmsprop: decay...) or max_norm (gradient clip). `inject-rl list` shows them all."""


def _parser() -> _Parser:
    p = _Parser(
        prog="inject-rl",
        description="Train JAX RL agents whose optax hyperparameters are stateful schedules "
        "driven by training signals.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `inject-rl COMMAND --help` for each command's options.",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser,
                           metavar="{train,eval,plot,list}")

    t = sub.add_parser(
        "train", help="train an agent into a run directory",
        formatter_class=argparse.RawTextHelpFormatter,
        description="Train an agent; writes config.json, metrics.jsonl, checkpoints/, params/ and "
        "summary.json\nto --out. Unset options take the agent's preset for the env (or, with "
        "--resume, the run's\nconfig.json).",
    )
    t.add_argument("--agent", help=f"agent name: {', '.join(AGENTS)} (default: {next(iter(AGENTS))})")
    t.add_argument("--env", help="gymnasium id (default: phys2d/CartPole-v1); see `inject-rl list`")
    t.add_argument("--steps", type=int, help="env steps (default: the agent's preset)")
    t.add_argument("--seed", type=int, help="random seed (default: 0)")
    t.add_argument("--devices", type=int, help="devices to pmap over (default: 1); on a CPU-only "
                   "machine that many fake CPU devices")
    t.add_argument("--out", help="run directory (default: runs/<agent>-<env>-s<seed>)")
    t.add_argument("--hp", action="append", metavar="NAME=SPEC", help=_HP_HELP)
    t.add_argument("--opt", help="optimizer: adam, adamw, sgd, rmsprop (default: the agent's, Adam)")
    t.add_argument("--config", metavar="FILE", help="JSON object of Config field overrides, e.g. "
                   '{"num_envs": 16, "ent_coef": "plateau(0.01, factor=0.5)"}')
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint (bitwise as if "
                   "uninterrupted)")
    t.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="checkpoint every N env steps, rounded to host calls (default: about 10 "
                   "per run); always at the end")
    t.add_argument("--eval-episodes", type=int, default=10, metavar="N",
                   help="greedy episodes for summary.json's eval_return (default: 10)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--no-compile-cache", action="store_true",
                   help="do not use the persistent compilation cache (INJECT_RL_COMPILE_CACHE=off)")
    d = t.add_argument_group("multi-process (jax.distributed, CPU collectives over gloo)")
    d.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    d.add_argument("--num-processes", type=int, metavar="P", help="processes in total")
    d.add_argument("--process-id", type=int, metavar="K", help="this process, in [0, P)")

    e = sub.add_parser("eval", help="evaluate a run's final params",
                       description="Mean return of greedy episodes with the final params in DIR.")
    e.add_argument("dir", metavar="DIR", help="run directory")
    e.add_argument("--episodes", type=int, default=20, help="episodes (default: 20)")
    e.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")

    pl = sub.add_parser("plot", help="plot runs' return and hyperparameters",
                        description="PNG of episode return and every hp/* series against env "
                        "steps, one subplot each, the runs overlaid.")
    pl.add_argument("dirs", nargs="+", metavar="DIR", help="run directories")
    pl.add_argument("--out", metavar="FILE.png",
                    help="output file (default: DIR/plot.png for one run, plot.png otherwise)")

    sub.add_parser("list", help="list agents, environments, schedules and optimizers",
                   description="List agents, environments (with the loop that runs them), "
                   "schedules with their parameters, and optimizers.")
    return p


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _set_devices(n: int | None) -> None:
    """Fake CPU devices: must happen before jax initialises its backends."""
    if n is None or n <= 1:
        return
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "",
                   os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _check_distributed(args, agent_name: str) -> bool:
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
        import agents
        from agents import _cli_build as b
        from inject_rl import envs

        # Processes join through the host loop (sebulba): its learner pmaps over every
        # process's devices. The anakin loop runs on one process's devices.
        env = args.env or b.DEFAULT_ENV
        if not hasattr(agents.get(agent_name), "make_host_learner"):
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


def _train(args) -> int:
    from agents import _cli_build as b
    from agents import _cli_train as t
    from inject_rl import runs

    agent_name = args.agent or next(iter(AGENTS))
    if agent_name not in AGENTS:
        raise UsageError(f"unknown agent {agent_name!r}; available: {', '.join(AGENTS)}")
    distributed = _check_distributed(args, agent_name)
    if args.no_compile_cache:
        os.environ["INJECT_RL_COMPILE_CACHE"] = "off"
    _set_devices(args.devices)
    if distributed:
        _init_distributed(args)
    if args.devices is not None and args.devices < 1:
        raise UsageError(f"--devices must be >= 1, got {args.devices}")
    if args.eval_episodes < 1:
        raise UsageError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1 env steps, got {args.checkpoint_every}")

    overrides = {}
    if args.config is not None:
        path = Path(args.config)
        if not path.is_file():
            raise UsageError(f"--config: no such file {args.config!r}")
        try:
            overrides = runs.read_json(path)
        except ValueError as e:
            raise UsageError(f"--config: {e}") from None
    hp = b.parse_hp_args(args.hp)
    env = args.env
    out = Path(args.out) if args.out else None
    seed = args.seed
    if out is None:
        env_name = env or (overrides.get("env_id") if isinstance(overrides, dict) else None)
        out = Path("runs") / _sanitise(
            f"{agent_name}-{env_name or b.DEFAULT_ENV}-s{0 if seed is None else seed}"
        )
    if args.resume:  # unset options come from the run's config.json
        saved = runs.read_json(out / runs.CONFIG)
        if isinstance(saved, dict):
            env = env or saved.get("env")
            seed = saved.get("seed") if seed is None else seed
            args.steps = saved.get("steps") if args.steps is None else args.steps
            args.devices = saved.get("devices") if args.devices is None else args.devices
            args.opt = args.opt or saved.get("opt")
            if args.checkpoint_every is None:
                args.checkpoint_every = saved.get("checkpoint_every")
            hp = hp or saved.get("hp", {})
            overrides = overrides if args.config is not None else saved.get("overrides", {})
            _set_devices(args.devices)
    built = b.build(agent_name=agent_name, env_id=env, steps=args.steps, seed=seed,
                    devices=args.devices, hp=hp, opt=args.opt, overrides=overrides,
                    source=f"--config {args.config}" if args.config else "config")
    built.record["checkpoint_every"] = args.checkpoint_every
    if distributed:
        built.record["distributed"] = {"num_processes": args.num_processes}
    try:
        summary = t.train(built, out, resume=args.resume, checkpoint_every=args.checkpoint_every,
                          eval_episodes=args.eval_episodes, quiet=args.quiet)
    except t.NothingWritten as e:
        raise UsageError(str(e.args[0])) from None
    text = (f"done: {summary['steps']} env steps in {summary['wall_s']:.1f} s (compile "
            f"{summary['compile_s']:.1f} s)")
    if summary["eval_return"] is not None:
        text += (f"; eval return {summary['eval_return']:.1f} over {summary['eval_episodes']} "
                 f"episodes; run directory {out}")
    print(text)
    return 0


def _load_run(directory: str):
    import agents
    from agents import _cli_build as b
    from inject_rl import runs

    d = Path(directory)
    record = runs.read_json(d / runs.CONFIG)
    if not isinstance(record, dict) or record.get("agent") not in AGENTS:
        raise UsageError(f"{directory} is not a run directory (no {runs.CONFIG} from inject-rl "
                         "train)")
    agent = agents.get(record["agent"])
    fields = b.config_from_json(record["agent"], agent.Config, record["config"], str(d))
    return agent, agent.Config(**fields)


def _eval(args) -> int:
    from agents import _cli_train as t
    from inject_rl import runs

    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    agent, cfg = _load_run(args.dir)
    params = runs.load_params(Path(args.dir) / runs.PARAMS)
    ret = t.evaluate(agent, cfg, params, args.episodes)
    print(f"eval return {ret:.2f} (mean over {args.episodes} greedy episodes, {cfg.env_id})")
    return 0


def _plot(args) -> int:
    from inject_rl import runs

    out = args.out or (str(Path(args.dirs[0]) / "plot.png") if len(args.dirs) == 1
                       else "plot.png")
    if not out.lower().endswith(".png"):
        raise UsageError(f"--out must name a .png file, got {out!r}")
    print(f"wrote {runs.plot_runs(args.dirs, out)}")
    return 0


def _list(args) -> int:
    import agents
    from agents import _cli_build as b
    from inject_rl import envs, schedules

    print("agents:")
    for name, (_, description) in AGENTS.items():
        print(f"  {name:6s} {description}")
        try:
            module = agents.get(name)
        except ImportError as e:  # an agent still being written must not break `list`
            print(f"         (unavailable: {e})")
            continue
        print(f"         --hp: {b.allowed_hps(name, module, None)}")
    print("environments (loop):")
    for env_id in envs.jax_env_ids():
        print(f"  {env_id:24s} anakin (in-graph, pmapped)")
    print("  any other gymnasium id needs the host loop (sebulba), when an agent supports it")
    print("schedules (--hp NAME='SPEC'):")
    for name in schedules.SCHEDULES:
        print(f"  {schedules.signature(name)}")
    print("optax step schedules (inside warmup/clip/spike_guard/from_step_schedule):")
    for name in schedules.STEP_SCHEDULES:
        print(f"  {schedules.signature(name)}")
    print("optimizers (--opt):")
    for name, factory in b.OPTIMIZERS.items():
        print(f"  {name:8s} {', '.join(b.optimizer_hps(factory))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `inject-rl` console script; returns the exit status."""
    commands = {"train": _train, "eval": _eval, "plot": _plot, "list": _list}
    try:
        args = _parser().parse_args(argv)
        return commands[args.command](args)
    except (UsageError, ValueError, TypeError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"inject-rl: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninject-rl: interrupted (continue a training run with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
