"""The fixed names under which training signals travel as `extra_args`."""

# Statistics over the episodes that finished in a batch; weighted by `episode_count` when reduced.
EPISODE_STAT_SIGNALS = ("episode_return", "episode_length")

SIGNAL_NAMES = (
    "episode_return",  # mean undiscounted return of the episodes finished in the batch
    "episode_count",  # number of those episodes (0: the two statistics above are meaningless)
    "episode_length",  # their mean length
    "kl",  # approximate KL between the behaviour policy and the updated one
    "entropy",  # mean policy entropy
    "loss",  # total loss
    "value_loss",  # critic / value loss
    "grad_norm",  # global norm of the gradients (before clipping)
    "td_error",  # mean absolute TD error
    "step",  # env steps so far
)
