"""The fixed names under which training signals travel as `extra_args`.

`SIGNAL_NAMES` is defined in `inject_rl.optim` (the bottom layer, which must strip these keys
before the inner optimizer sees them) and re-exported here.
"""

from inject_rl.optim._signal_names import SIGNAL_NAMES

# Statistics over the episodes that finished in a batch: weighted by `episode_count` in `sync`,
# and ignored by schedules when `episode_count == 0`.
EPISODE_STAT_SIGNALS = ("episode_return", "episode_length")

__all__ = ["EPISODE_STAT_SIGNALS", "SIGNAL_NAMES"]
