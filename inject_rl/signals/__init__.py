"""Typed training signals: names, episode statistics, cross-device reduction, and the running
statistics of observation normalisation and reward scaling."""

from inject_rl.signals._episode_stats import EpisodeStats, EpisodeStatsState
from inject_rl.signals._names import EPISODE_STAT_SIGNALS, SIGNAL_NAMES
from inject_rl.signals._normalize import (
    RewardScale,
    RewardScaleState,
    RunningMeanStd,
    RunningMeanStdState,
)
from inject_rl.signals._sync import sync, sync_and_pmean

__all__ = [
    "EPISODE_STAT_SIGNALS",
    "SIGNAL_NAMES",
    "EpisodeStats",
    "EpisodeStatsState",
    "RewardScale",
    "RewardScaleState",
    "RunningMeanStd",
    "RunningMeanStdState",
    "sync",
    "sync_and_pmean",
]
