"""`inject-rl eval`, `plot` and `list` (each imports what it needs when it runs)."""

from __future__ import annotations

from pathlib import Path

from inject_rl.cli._parser import UsageError

# The most videos one `eval --video` records (each episode is rendered and encoded on the CPU).
MAX_VIDEO_EPISODES = 100


def check_int_flag(flag: str, value: int | None, low: int, high: int) -> None:
    """An integer option in [low, high] (argparse reads `--steps 1` and 400 zeros as one int)."""
    if value is not None and not low <= value <= high:
        text = str(value)
        shown = text if len(text) <= 30 else f"{text[:20]}... ({len(text)} digits)"
        raise UsageError(f"{flag} must be >= {low} and <= {high:,}, got {shown}")


def eval_(args) -> int:
    from inject_rl.agents._common import MAX_EVAL_EPISODES, MAX_SEED

    check_int_flag("--episodes", args.episodes, 1, MAX_EVAL_EPISODES)
    check_int_flag("--seed", args.seed, 0, MAX_SEED)
    check_int_flag("--video-episodes", args.video_episodes, 1, MAX_VIDEO_EPISODES)
    if args.video is not None and Path(args.video).exists() and not Path(args.video).is_dir():
        raise UsageError(f"--video must name a directory, {args.video!r} is a file")
    from inject_rl.agents import load_policy
    from inject_rl.cli import _eval

    policy = load_policy(args.dir)
    if args.video is not None:  # a missing renderer or moviepy: refused before evaluating
        _eval.open_video_env(policy.config.env_id).close()
    returns = _eval.episode_returns(policy, args.episodes, args.seed)
    print(
        f"eval return {returns.mean():.2f} mean, {returns.std():.2f} std, {returns.min():.2f} "
        f"min, {returns.max():.2f} max ({args.episodes} greedy episodes, "
        f"{policy.config.env_id}, seed {args.seed})"
    )
    if args.video is not None:
        for path in _eval.record_videos(policy, args.video, args.video_episodes, args.seed):
            print(f"video {path}")
    return 0


def plot(args) -> int:
    from inject_rl import runs

    out = args.out or (str(Path(args.dirs[0]) / runs.PLOT) if len(args.dirs) == 1 else runs.PLOT)
    if not out.lower().endswith(".png"):
        raise UsageError(f"--out must name a .png file, got {out!r}")
    if not 0 <= args.smooth < 1:
        raise UsageError(f"--smooth must be in [0, 1), got {args.smooth}")
    written = runs.plot_runs(
        args.dirs, out, smooth_weight=args.smooth, spread=args.spread, metrics=args.metrics
    )
    print(f"wrote {written}")
    return 0


def list_(args) -> int:
    from inject_rl.cli import _listing

    print("\n".join(_listing.lines(_listing.listing())))
    return 0
