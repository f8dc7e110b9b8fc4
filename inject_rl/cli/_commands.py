"""`inject-rl eval`, `plot` and `list`."""

from __future__ import annotations

from pathlib import Path

from inject_rl.agents import AGENTS
from inject_rl.cli._parser import UsageError


def _load_run(directory: str):
    from inject_rl import agents
    from inject_rl.cli import _build as b
    from inject_rl import runs

    d = Path(directory)
    record = runs.read_json(d / runs.CONFIG)
    if not isinstance(record, dict) or record.get("agent") not in AGENTS:
        raise UsageError(
            f"{directory} is not a run directory (no {runs.CONFIG} from inject-rl train)"
        )
    agent = agents.get(record["agent"])
    fields = b.config_from_json(record["agent"], agent.Config, record["config"], str(d))
    return agent, agent.Config(**fields)


def eval_(args) -> int:
    from inject_rl.cli import _train as t
    from inject_rl import runs

    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    agent, cfg = _load_run(args.dir)
    params = runs.load_params(Path(args.dir) / runs.PARAMS)
    ret = t.evaluate(agent, cfg, params, args.episodes)
    print(f"eval return {ret:.2f} (mean over {args.episodes} greedy episodes, {cfg.env_id})")
    return 0


def plot(args) -> int:
    from inject_rl import runs

    out = args.out or (str(Path(args.dirs[0]) / "plot.png") if len(args.dirs) == 1 else "plot.png")
    if not out.lower().endswith(".png"):
        raise UsageError(f"--out must name a .png file, got {out!r}")
    print(f"wrote {runs.plot_runs(args.dirs, out)}")
    return 0


def list_(args) -> int:
    from inject_rl import agents
    from inject_rl.cli import _build as b
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
