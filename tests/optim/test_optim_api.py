"""The public API of `inject_rl.optim`."""

import inject_rl.optim


def test_every_public_name_imports():
    for name in inject_rl.optim.__all__:
        assert getattr(inject_rl.optim, name) is not None, name


def test_signal_names_are_the_design_contract():
    assert inject_rl.optim.SIGNAL_NAMES == (
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
