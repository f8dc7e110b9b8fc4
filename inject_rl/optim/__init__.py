"""Building injected optimizers; reading and overriding their hyperparameters by name."""

from inject_rl.optim._alignment import (
    UPDATE_COS,
    UpdateAlignmentState,
    descent_cosine,
    update_alignment,
)
from inject_rl.optim._apply import apply_gradients, first_minibatch_only
from inject_rl.optim._carried import carried, current
from inject_rl.optim._extra_args import forward_extra_args
from inject_rl.optim._hyperparams import (
    bounds,
    hyperparams,
    scale_hyperparam,
    set_hyperparam,
)
from inject_rl.optim._injected import injected
from inject_rl.optim._packed_state import PackedState, packed

# Re-exported for compatibility: the names are defined (once) in inject_rl.signals.
from inject_rl.signals import SIGNAL_NAMES

__all__ = [
    "bounds",
    "PackedState",
    "SIGNAL_NAMES",
    "UPDATE_COS",
    "UpdateAlignmentState",
    "apply_gradients",
    "carried",
    "current",
    "descent_cosine",
    "first_minibatch_only",
    "forward_extra_args",
    "hyperparams",
    "injected",
    "packed",
    "scale_hyperparam",
    "set_hyperparam",
    "update_alignment",
]
