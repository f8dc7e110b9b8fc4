"""Typed training signals: names, episode statistics, cross-device reduction."""

from inject_rl.signals._episode_stats import EpisodeStats, EpisodeStatsState
from inject_rl.signals._names import EPISODE_STAT_SIGNALS, SIGNAL_NAMES
from inject_rl.signals._sync import sync

__all__ = [
    "EPISODE_STAT_SIGNALS",
    "SIGNAL_NAMES",
    "EpisodeStats",
    "EpisodeStatsState",
    "sync",
]
