"""The fixed names under which training signals travel as `extra_args` (the signal contract).

`inject_rl.signals` owns these names; `inject_rl.optim` imports them from here to strip them
before the inner optimizer of `injected` sees them, and re-exports `SIGNAL_NAMES` for
compatibility.
"""

# The signal contract of DESIGN.md: agents call `opt.update(grads, opt_state, params, **signals)`
# with these keys. Schedules read them; the inner optimizer of `injected` never sees them.
SIGNAL_NAMES: tuple[str, ...] = (
    "episode_return",
    "episode_count",
    "episode_length",
    "kl",
    "entropy",
    "loss",
    "value_loss",
    "grad_norm",
    "td_error",
    "step",
)

# Statistics over the episodes that finished in a batch: weighted by `episode_count` in `sync`,
# and ignored by schedules when `episode_count == 0`.
EPISODE_STAT_SIGNALS = ("episode_return", "episode_length")

__all__ = ["EPISODE_STAT_SIGNALS", "SIGNAL_NAMES"]
