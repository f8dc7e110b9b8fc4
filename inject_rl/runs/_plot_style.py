"""How the panels of `inject-rl plot` read: y scales, tick labels, numbers, member shades."""

from __future__ import annotations

import numpy as np

# Returns and lengths are compared by difference, never on a log axis (issue 15: a CartPole
# return from 9 to 500 was drawn on one).
LINEAR = ("episode_return", "episode_length")


def log_scale(name: str, values: np.ndarray) -> bool:
    """Whether a series reads better on a log axis.

    Hyperparameters (`hp/*`: learning rates and other rates, which schedules multiply) when
    positive; zeros are allowed (a rate decayed to 0, left undrawn) when the positive values span a
    decade. Any other positive quantity when it spans a decade. Returns never.

    >>> log_scale("hp/learning_rate", np.array([1e-3, 5e-4])), log_scale("kl", np.array([1, 2]))
    (True, False)
    """
    v = values[np.isfinite(values)]
    if name in LINEAR or v.size == 0 or v.min() < 0 or v.max() <= 0:
        return False
    positive = v[v > 0]
    decade = bool(positive.max() >= 10 * positive.min())
    if name.startswith("hp/"):
        return bool(v.min() > 0) or decade
    return bool(v.min() > 0) and decade


def number(x: float) -> str:
    """A value as a caption or tick shows it: four significant digits, short exponents.

    >>> [number(v) for v in (0.001, 1e-05, 0.9, 3e-4, 2.5e6, 0.0)]
    ['0.001', '1e-5', '0.9', '0.0003', '2.5e6', '0']
    """
    text = f"{x:.4g}"
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if e else text


def format_axes(ax, log: bool) -> None:
    """Scale and tick labels of one panel, once its lines are drawn.

    Env steps in engineering notation (20k, 1.5M). A linear y axis in scientific notation outside
    [1e-3, 1e4) (ticks 1 2 3 with "x10^-6" above its top left corner, not "0.0000000000"). A log
    y axis labels decades (10^-4); one spanning less than a decade, which would show one label or
    none, gets plain numbers at evenly spaced ticks instead.
    """
    from matplotlib.ticker import (
        EngFormatter,
        FuncFormatter,
        MaxNLocator,
        NullLocator,
        ScalarFormatter,
    )

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if not log:
        # No offset ("x1e-5+6.931e-1" reads worse than 0.69313); scientific only for the scale.
        scalar = ScalarFormatter(useOffset=False, useMathText=True)
        scalar.set_powerlimits((-3, 4))
        ax.yaxis.set_major_formatter(scalar)
        return
    ax.set_yscale("log", nonpositive="mask")
    ax.autoscale_view()
    low, high = ax.get_ylim()
    if high < 10 * low:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number(v)))


def shades(color, n: int) -> list[tuple[float, float, float]]:
    """`n` lighter tints of `color`, from a little to clearly lighter: the ordinary members of a
    population, whose best member is drawn in `color` itself."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(color))
    return [tuple(rgb + (1.0 - rgb) * t) for t in np.linspace(0.3, 0.65, n)]
