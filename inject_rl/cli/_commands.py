"""`inject-rl eval`, `plot` and `list`."""

from __future__ import annotations

from pathlib import Path

from inject_rl import agents
from inject_rl.agents._common import MAX_EVAL_EPISODES, MAX_SEED
from inject_rl.cli._parser import UsageError


def check_int_flag(flag: str, value: int | None, low: int, high: int) -> None:
    """An integer option in [low, high] (argparse reads `--steps 1` and 400 zeros as one int)."""
    if value is not None and not low <= value <= high:
        text = str(value)
        shown = text if len(text) <= 30 else f"{text[:20]}... ({len(text)} digits)"
        raise UsageError(f"{flag} must be >= {low} and <= {high:,}, got {shown}")


def eval_(args) -> int:
    from inject_rl.agents import load_policy

    check_int_flag("--episodes", args.episodes, 1, MAX_EVAL_EPISODES)
    check_int_flag("--seed", args.seed, 0, MAX_SEED)
    policy = load_policy(args.dir)
    ret = policy.evaluate(episodes=args.episodes, seed=args.seed)
    print(
        f"eval return {ret:.2f} (mean over {args.episodes} greedy episodes, "
        f"{policy.config.env_id}, seed {args.seed})"
    )
    return 0


def plot(args) -> int:
    from inject_rl import runs

    out = args.out or (str(Path(args.dirs[0]) / "plot.png") if len(args.dirs) == 1 else "plot.png")
    if not out.lower().endswith(".png"):
        raise UsageError(f"--out must name a .png file, got {out!r}")
    print(f"wrote {runs.plot_runs(args.dirs, out)}")
    return 0


def list_(args) -> int:
    from inject_rl import envs, schedules
    from inject_rl.cli import _build as b

    print("agents:")
    for name in agents.names():
        try:
            agent = agents.get(name)
        except (ImportError, ValueError) as e:  # a broken third-party agent must not break `list`
            print(f"  {name:6s} (unavailable: {e})")
            continue
        print(f"  {name:6s} {agent.description} [{', '.join(agent.loops)}]")
        print(f"         --hp: {b.allowed_hps(agent, None)}")
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
