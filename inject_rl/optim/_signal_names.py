"""Names of the training signals our agents pass to `opt.update` as `extra_args`."""

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
