"""Building injected optimizers; reading and overriding their hyperparameters by name."""

from inject_rl.optim._carried import carried, current
from inject_rl.optim._hyperparams import hyperparams, set_hyperparam
from inject_rl.optim._injected import injected
from inject_rl.optim._signal_names import SIGNAL_NAMES

__all__ = ["SIGNAL_NAMES", "carried", "current", "hyperparams", "injected", "set_hyperparam"]
