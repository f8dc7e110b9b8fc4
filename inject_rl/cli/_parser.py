"""The `inject-rl` argument parser: one subparser per command, one-line errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from inject_rl import agents
from inject_rl.cli import _sweep


class UsageError(Exception):
    """A user error: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump), and fills help texts that need
    the agents (which import jax) only when help is shown."""

    lazy_help: dict[argparse.Action, Callable[[], str]]

    def format_help(self) -> str:
        for action, text in getattr(self, "lazy_help", {}).items():
            action.help = text()
        return super().format_help()

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


_HP_HELP = """\
hyperparameter NAME=SPEC (repeatable). SPEC is a number (a constant) or a schedule call:
  learning_rate='kl_target(3e-4, target=0.01)', b1='plateau(0.9, factor=1.05, max_value=0.99)',
  ent_coef='progress(0.01, 0.0, low=0, high=500)', learning_rate=3e-4.
NAME is an injectable Config field of the agent:
{fields}
a numeric parameter of the optimizer (adam: b1, b2, eps...; sgd: momentum; rmsprop: decay...)
or max_norm (gradient clip). `inject-rl list` shows them all."""


def _hp_help() -> str:
    from inject_rl.cli import _listing  # the agents' fields without importing them (cached)

    lines = []
    for name, fields in _listing.injectable(_listing.listing()).items():
        # A broken third-party agent must not break help.
        lines.append(f"  {name}: {fields if isinstance(fields, str) else ', '.join(fields)}")
    return _HP_HELP.format(fields="\n".join(lines))


def parser() -> _Parser:
    p = _Parser(
        prog="inject-rl",
        description="Train JAX RL agents whose optax hyperparameters are stateful schedules "
        "driven by training signals.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `inject-rl COMMAND --help` for each command's options.",
    )
    sub = p.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="{train,sweep,eval,plot,list}"
    )

    t = sub.add_parser(
        "train",
        help="train an agent into a run directory",
        formatter_class=argparse.RawTextHelpFormatter,
        description="Train an agent; writes config.json, metrics.jsonl, checkpoints/, params/ and "
        "summary.json\nto --out. Unset options take the agent's preset for the env (or, with "
        "--resume, the run's\nconfig.json).",
    )
    t.add_argument(
        "--agent",
        help=f"agent: {', '.join(agents.names())} (default: {next(iter(agents.BUILTIN))})",
    )
    t.add_argument(
        "--env",
        help="gymnasium id, or envpool/<TaskId> (default: the agent's; ppo: phys2d/CartPole-v1);\n"
        "see `inject-rl list`",
    )
    t.add_argument(
        "--steps",
        type=int,
        help="env steps (default: the agent's preset); with --resume, a new total extends the run",
    )
    t.add_argument("--seed", type=int, help="random seed (default: 0)")
    t.add_argument(
        "--devices",
        type=int,
        help="devices to pmap over (default: 1); on a CPU-only machine that many fake CPU devices",
    )
    t.add_argument(
        "--out",
        help="run directory (default: runs/<agent>-<env>-s<seed>, or the first of ...-2, -3...\n"
        "that holds no run yet, so the same command can run again)",
    )
    hp = t.add_argument("--hp", action="append", metavar="NAME=SPEC", help="see below")
    t.lazy_help = {hp: _hp_help}
    t.add_argument(
        "--opt", help="optimizer: adam, adamw, sgd, rmsprop (default: the agent's: Adam)"
    )
    t.add_argument(
        "--config",
        metavar="FILE",
        help="JSON object of Config field overrides, e.g. "
        '{"num_envs": 16, "ent_coef": "plateau(0.01, factor=0.5)"}',
    )
    t.add_argument(
        "--vectorization",
        metavar="{sync,async}",
        help="host envs (gymnasium ids): step each actor's envs in turn in one process (sync,\n"
        "the default) or one subprocess per env (async: the same transitions; worth it for\n"
        "slow envs on spare cores); the Config field `vectorization`. envpool/<TaskId> ids\n"
        "(pip install 'inject-rl[envpool]') run on envpool's own threads and in-graph ids\n"
        "have no host envs: both take only sync. With --resume, the run's own",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest intact checkpoint (options not given\n"
        "come from its config.json). In-graph envs (phys2d/*): bitwise as if uninterrupted.\n"
        "Host envs: the learner (params, optimizer and schedule states, keys, step) continues\n"
        "bitwise, but the envs restart from fresh resets, so later rollouts differ from an\n"
        "uninterrupted run. With --steps N beyond the run's total, continues a finished run to N\n"
        "steps: in-graph envs, bitwise the uninterrupted N-step run; refused when the agent's\n"
        "program depends on the total (dqn's default epsilon decays over a fraction of it).\n"
        "Without --resume or --overwrite, a directory holding a run is an error",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (its old files are deleted when the first host call\n"
        "has returned); never replaces a directory that holds no run",
    )
    t.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="checkpoint every N env steps, rounded to host calls (default: every 30 s of "
        "wall time); always at the end",
    )
    t.add_argument(
        "--eval-episodes",
        type=int,
        default=10,
        metavar="N",
        help="greedy episodes for summary.json's eval_return (default: 10)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress output")
    po = t.add_argument_group(
        "populations (in-graph envs: the members train as one program; the best member's "
        "params are the run's)"
    )
    po.add_argument(
        "--population",
        type=int,
        metavar="N",
        help="train N members (seeds seed, seed+1, ...) side by side; metrics.jsonl gets one\n"
        "row per member and host call (key `member`)",
    )
    po.add_argument(
        "--pbt",
        metavar="NAMES",
        help="population-based training of these injected hyperparameters (comma-separated,\n"
        "e.g. learning_rate,ent_coef): every --pbt-interval iterations the bottom quarter\n"
        "copies a top member (params, optimizer and schedule states) and scales the named\n"
        "values by 0.5 or 2 (betas: 1 - value); lineage in metrics.jsonl (pbt/source)",
    )
    po.add_argument(
        "--pbt-interval",
        type=int,
        metavar="K",
        help="iterations between PBT's exploit steps (default: 5)",
    )
    lg = t.add_argument_group("logging (metrics.jsonl is always written and is the reference)")
    lg.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also write TensorBoard event files to DIR/tb (tensorboardX: pip install\n"
        "'inject-rl[tensorboard]'); with --resume, the run's choice unless given",
    )
    lg.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="also log to Weights & Biases project PROJECT (pip install 'inject-rl[wandb]';\n"
        "WANDB_MODE=offline keeps it local); with --resume, the same W&B run continues",
    )
    t.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use the persistent compilation cache (INJECT_RL_COMPILE_CACHE=off)",
    )
    d = t.add_argument_group("multi-process (jax.distributed, CPU collectives over gloo)")
    d.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    d.add_argument("--num-processes", type=int, metavar="P", help="processes in total")
    d.add_argument("--process-id", type=int, metavar="K", help="this process, in [0, P)")

    e = sub.add_parser(
        "eval",
        help="evaluate a run's final params",
        formatter_class=argparse.RawTextHelpFormatter,
        description="Mean, standard deviation (over episodes, ddof=0), min and max return of "
        "greedy episodes\nwith the final params in DIR (in-graph for phys2d/*, on host envs "
        "otherwise).",
    )
    e.add_argument("dir", metavar="DIR", help="run directory")
    e.add_argument("--episodes", type=int, default=20, help="episodes (default: 20)")
    e.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    e.add_argument(
        "--video",
        metavar="DIR",
        help="also film greedy episodes into DIR as mp4 (gymnasium's RecordVideo; pip install\n"
        "'inject-rl[video]'), on the run's host env, or for phys2d/* on the host env of the\n"
        "same name (phys2d/CartPole-v1: CartPole-v1); episode i reset with seed + i;\n"
        "a video of the same name in DIR is replaced",
    )
    e.add_argument(
        "--video-episodes",
        type=int,
        default=1,
        metavar="N",
        help="episodes to film with --video (default: 1)",
    )

    pl = sub.add_parser(
        "plot",
        help="plot runs' return and hyperparameters",
        description="PNG of episode return, the signals schedules read and the hp/* series "
        "that move, against env steps; constants listed in a caption; one colour per run; runs "
        "differing only by seed as mean and spread; population members as thin lines.",
    )
    pl.add_argument("dirs", nargs="+", metavar="DIR", help="run directories")
    pl.add_argument(
        "--out",
        metavar="FILE.png",
        help="output file (default: DIR/plot.png for one run, plot.png otherwise)",
    )
    pl.add_argument(
        "--smooth",
        type=float,
        default=0.6,
        metavar="W",
        help="EMA weight in [0, 1) for every series but hp/* (default: 0.6; 0: raw values)",
    )
    pl.add_argument(
        "--spread",
        choices=("range", "std"),
        default="range",
        help="shading over runs that differ only by seed: min to max, or mean +- one std",
    )
    pl.add_argument(
        "--metric",
        action="append",
        default=[],
        dest="metrics",
        metavar="NAME",
        help="also draw this metrics.jsonl key (repeatable)",
    )

    _sweep.add_parser(sub, _hp_help)

    sub.add_parser(
        "list",
        help="list agents, environments, schedules and optimizers",
        description="List agents, environments (with the loop that runs them), "
        "schedules with their parameters, and optimizers.",
    )
    return p
