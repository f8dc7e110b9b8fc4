"""`inject-rl plot` (issue 15 item 2): scales, colours, legend, caption, panels, smoothing, seeds
and population members, asserted on the matplotlib Figure rather than on pixels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_rgba

from inject_rl.runs import _plot
from inject_rl.runs._plot import runs_figure
from inject_rl.runs._plot_panels import SIGNALS
from inject_rl.signals import EPISODE_STAT_SIGNALS, SIGNAL_NAMES

CONFIG = {"agent": "ppo", "env": "phys2d/CartPole-v1", "seed": 0, "config": {"seed": 0}}


def write_run(path, rows, config=None):
    """A run directory with hand-written metrics.jsonl (NaN as null) and config.json."""
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w") as f:
        for row in rows:
            clean = {
                k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()
            }
            f.write(json.dumps(clean) + "\n")
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    return path


def rows_of(n=5, **columns):
    """n rows at steps 100, 200, ...; each column a list of n values or one constant."""
    return [
        {
            "step": 100 * (i + 1),
            **{k: v[i] if isinstance(v, list) else v for k, v in columns.items()},
        }
        for i in range(n)
    ]


def seed_config(seed, lr="1e-3"):
    return {**CONFIG, "seed": seed, "config": {"seed": seed, "learning_rate": lr}}


def panel(fig, name):
    found = [ax for ax in fig.axes if ax.get_title() == name]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def caption(fig):
    return "\n".join(t.get_text() for t in fig.texts)


def legend_labels(fig):
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    return [t.get_text() for t in fig.legends[0].get_texts()]


def colours(ax):
    return [to_rgba(line.get_color()) for line in ax.get_lines()]


def test_rates_on_log_axes_returns_linear(tmp_path):
    run = write_run(
        tmp_path / "a",
        rows_of(
            episode_return=[10.0, 50.0, 200.0, 400.0, 500.0],  # positive, spans decades
            kl=[1e-4, 1e-3, 1e-2, 3e-2, 1e-1],  # a positive signal spanning decades
            loss=[1.0, -0.5, 0.2, -0.1, 0.05],
            entropy=[0.69, 0.68, 0.66, 0.65, 0.6],  # positive, under a decade
            **{
                "hp/learning_rate": [1e-3, 5e-4, 1e-4, 5e-5, 1e-5],
                "hp/clip_eps": [0.2, 0.18, 0.16, 0.14, 0.12],  # a rate, under a decade
                "hp/ent_coef": [0.01, 0.001, 1e-4, 1e-5, 0.0],  # decays to exactly 0
            },
        ),
    )
    fig = runs_figure([run], smooth_weight=0.0)
    scales = {t: panel(fig, t).get_yscale() for t in titles(fig)}
    assert scales == {
        "episode_return": "linear",
        "kl": "log",
        "entropy": "linear",
        "loss": "linear",
        "hp/learning_rate": "log",
        "hp/clip_eps": "log",
        "hp/ent_coef": "log",
    }


def test_one_colour_per_run_in_every_panel_and_one_legend(tmp_path):
    varying = {
        "kl": [0.01, 0.02, 0.03, 0.02, 0.01],
        "hp/learning_rate": [1e-3, 8e-4, 6e-4, 4e-4, 2e-4],
    }
    a = write_run(tmp_path / "ppo", rows_of(episode_return=[1.0, 2, 3, 4, 5], **varying))
    b = write_run(tmp_path / "sac", rows_of(episode_return=[5.0, 4, 3, 2, 1], **varying))
    fig = runs_figure([a, b])
    assert legend_labels(fig) == ["ppo", "sac"]
    assert titles(fig) == ["episode_return", "kl", "hp/learning_rate"]
    first = colours(fig.axes[0])
    assert len(first) == 2 and first[0] != first[1]
    for ax in fig.axes:
        assert colours(ax) == first, ax.get_title()


def test_constant_hyperparameters_go_to_the_caption_not_to_panels(tmp_path):
    ret = [1.0, 2, 3, 4, 5]
    a = write_run(tmp_path / "a", rows_of(episode_return=ret, **{"hp/b1": 0.9, "hp/eps": 1e-5}))
    b = write_run(tmp_path / "b", rows_of(episode_return=ret, **{"hp/b1": 0.9, "hp/eps": 1e-8}))
    fig = runs_figure([a, b])
    assert titles(fig) == ["episode_return"]
    text = caption(fig)
    assert "b1 = 0.9," in text and "eps = 1e-5 (a) / 1e-8 (b)" in text


def test_a_hyperparameter_moving_in_one_run_is_drawn_for_all(tmp_path):
    ret = [1.0, 2, 3, 4, 5]
    a = write_run(tmp_path / "a", rows_of(episode_return=ret, **{"hp/learning_rate": 1e-3}))
    lr = [1e-3, 1e-3, 5e-4, 5e-4, 2e-4]
    b = write_run(tmp_path / "b", rows_of(episode_return=ret, **{"hp/learning_rate": lr}))
    fig = runs_figure([a, b])
    assert titles(fig) == ["episode_return", "hp/learning_rate"]
    assert len(panel(fig, "hp/learning_rate").get_lines()) == 2
    assert "learning_rate" not in caption(fig)


def test_panels_for_the_signals_schedules_read_when_present(tmp_path):
    moving = [0.5, 0.4, 0.3, 0.35, 0.2]
    run = write_run(
        tmp_path / "a",
        rows_of(
            episode_return=[1.0, 2, 3, 4, 5],
            kl=moving,
            entropy=moving,
            loss=moving,
            grad_norm=moving,
            diverged=0.0,  # not a signal: not drawn, not listed
            wall_s=[1.0, 2, 3, 4, 5],
        ),
    )
    fig = runs_figure([run])
    assert titles(fig) == ["episode_return", "kl", "entropy", "loss", "grad_norm"]
    assert "diverged" not in caption(fig) and "wall_s" not in caption(fig)
    # Five panels: two columns; env steps labelled under the lowest panel of each column.
    assert [ax.get_xlabel() for ax in fig.axes] == ["", "", "", "env steps", "env steps"]
    fig = runs_figure([run], metrics=["wall_s"])
    assert titles(fig) == ["episode_return", "wall_s", "kl", "entropy", "loss", "grad_norm"]


def test_a_run_of_one_row_is_drawn_as_a_point(tmp_path):
    run = write_run(tmp_path / "a", rows_of(n=1, episode_return=[9.0]))
    (line,) = panel(runs_figure([run]), "episode_return").get_lines()
    assert line.get_marker() == "o" and list(line.get_ydata()) == [9.0]


def test_a_metric_no_run_logged_is_refused(tmp_path):
    # It used to be drawn as an empty panel of that name, and `plot` exited 0.
    run = write_run(tmp_path / "a", rows_of(episode_return=[1.0, 2, 3, 4, 5], kl=0.1))
    with pytest.raises(ValueError, match="--metric 'nonexistent': no run logged it; .*kl"):
        runs_figure([run], metrics=["nonexistent"])


def test_panel_signals_are_the_signal_contract():
    rest = set(SIGNAL_NAMES) - set(SIGNALS)
    assert set(SIGNALS) <= set(SIGNAL_NAMES)
    assert rest == {*EPISODE_STAT_SIGNALS, "episode_count", "step"}


@pytest.mark.parametrize("weight", [0.0, 0.5], ids=["raw", "ema"])
def test_smoothing_skips_rows_where_no_episode_finished(tmp_path, weight):
    nan = float("nan")
    run = write_run(tmp_path / "a", rows_of(episode_return=[nan, 10.0, nan, 20.0, 30.0]))
    (line,) = runs_figure([run], smooth_weight=weight).axes[0].get_lines()
    assert line.get_xdata().tolist() == [200, 400, 500]
    # Debiased EMA: (1-w)x1 / (1-w), then (w*a + (1-w)x) / (1-w^k).
    expected = {0.0: [10.0, 20.0, 30.0], 0.5: [10.0, 12.5 / 0.75, 21.25 / 0.875]}[weight]
    np.testing.assert_allclose(line.get_ydata(), expected)


def test_hyperparameters_are_not_smoothed(tmp_path):
    lr = [1e-3, 1e-3, 1e-4, 1e-4, 1e-4]
    run = write_run(tmp_path / "a", rows_of(episode_return=1.0, **{"hp/learning_rate": lr}))
    (line,) = panel(runs_figure([run], smooth_weight=0.9), "hp/learning_rate").get_lines()
    np.testing.assert_allclose(line.get_ydata(), lr)


@pytest.mark.parametrize("bad", [{"smooth_weight": 1.0}, {"spread": "sem"}], ids=["w1", "sem"])
def test_bad_options_are_value_errors(tmp_path, bad):
    run = write_run(tmp_path / "a", rows_of(episode_return=1.0))
    with pytest.raises(ValueError, match=next(iter(bad))):
        runs_figure([run], **bad)


def seeds(tmp_path, returns, lr="1e-3", prefix="ppo"):
    return [
        write_run(
            tmp_path / f"{prefix}-s{s}",
            rows_of(episode_return=ret, kl=[0.01 * (s + 1)] * 4 + [0.05]),
            seed_config(s, lr),
        )
        for s, ret in enumerate(returns)
    ]


def test_runs_differing_only_by_seed_are_a_mean_and_a_shaded_range(tmp_path):
    returns = [[1.0, 2, 3, 4, 5], [3.0, 4, 5, 6, 7], [2.0, 3, 4, 5, 9]]
    other = seeds(tmp_path, [[0.0, 0, 0, 0, 0]], lr="3e-4", prefix="slow")
    fig = runs_figure([*seeds(tmp_path, returns), *other], smooth_weight=0.0)
    assert legend_labels(fig) == ["ppo (3 seeds)", "slow-s0"]
    ax = panel(fig, "episode_return")
    mean, single = ax.get_lines()
    np.testing.assert_allclose(mean.get_ydata(), np.mean(returns, axis=0))
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert to_rgba(band.get_facecolor()[0], 1) == to_rgba(mean.get_color())
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 1.0 and ys.max() == 9.0  # min and max over seeds
    assert to_rgba(single.get_color()) != to_rgba(mean.get_color())


def test_seed_spread_as_standard_deviation(tmp_path):
    returns = [[1.0, 2, 3, 4, 5], [3.0, 4, 5, 6, 7]]
    fig = runs_figure(seeds(tmp_path, returns), smooth_weight=0.0, spread="std")
    (band,) = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 1.0 and ys.max() == 7.0  # mean -+ std is 2-1 .. 6+1 here
    assert "mean -+ one std over seeds" in caption(fig)


def test_runs_with_other_configs_or_none_are_not_averaged(tmp_path):
    a, b = seeds(tmp_path, [[1.0] * 5, [2.0] * 5])
    c = write_run(tmp_path / "c", rows_of(episode_return=3.0))
    d = write_run(tmp_path / "d", rows_of(episode_return=4.0))  # neither has config.json
    (tmp_path / "ppo-s1" / "config.json").write_text(json.dumps(seed_config(1, lr="5e-4")))
    fig = runs_figure([a, b, c, d])
    assert legend_labels(fig) == ["ppo-s0", "ppo-s1", "c", "d"]
    assert not [x for x in fig.axes[0].collections if isinstance(x, PolyCollection)]
    assert len(set(colours(fig.axes[0]))) == 4


def population_rows():
    """3 members x 4 iterations; member 2 ends best; member 0 copies 2 at step 300."""
    returns = {0: [1.0, 2.0, 8.0, 9.0], 1: [2.0, 3.0, 3.0, 4.0], 2: [3.0, 6.0, 9.0, 12.0]}
    rows = []
    for i in range(4):
        for m, ret in returns.items():
            lr = 1e-3 * (1 + m) * (0.5 if m == 0 and i >= 2 else 1.0)
            source = 2 if (m == 0 and i == 2) else -1
            row = {"step": 100 * (i + 1), "member": m, "episode_return": ret[i]}
            rows.append({**row, "hp/learning_rate": lr, "pbt/source": source, "hp/b1": 0.9})
    return rows


def test_population_members_drawn_in_tints_with_the_best_emphasised(tmp_path):
    pbt = write_run(tmp_path / "pbt", population_rows())
    hp = {"hp/learning_rate": 1e-3, "hp/b1": 0.9}
    other = write_run(tmp_path / "base", rows_of(episode_return=[1.0, 2, 3, 4, 5], **hp))
    fig = runs_figure([other, pbt], smooth_weight=0.0)
    assert legend_labels(fig) == ["base", "pbt (3 members, best 2)"]
    assert titles(fig) == ["episode_return", "hp/learning_rate"]  # b1 = 0.9 in the caption
    for ax in fig.axes:
        base, *members = ax.get_lines()
        assert [line.get_gid() for line in members] == ["m0", "m1", "m2"]
        widths = [line.get_linewidth() for line in members]
        assert widths[2] > widths[0] == widths[1]
        colour = to_rgba(members[2].get_color())  # the best: the run's colour itself
        assert colour == to_rgba(fig.legends[0].legend_handles[1].get_color())
        assert colour != to_rgba(base.get_color())
        tints = {to_rgba(line.get_color()) for line in members[:2]}
        assert len(tints) == 2 and colour not in tints
        # A tint is lighter than the run's colour in every channel.
        assert all(np.all(np.array(t[:3]) >= np.array(colour[:3])) for t in tints)
    (copies,) = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(copies.get_offsets(), [[300.0, 8.0]])
    np.testing.assert_allclose(panel(fig, "hp/learning_rate").get_lines()[1].get_ydata()[-1], 5e-4)


def test_small_values_have_readable_tick_labels(tmp_path):
    kl = [1e-7, 2e-7, 3e-7, 2.5e-7, 1.5e-7]  # linear: under a decade
    b1 = [0.9, 0.92, 0.95, 0.97, 0.99]  # a rate: log axis, under a decade
    run = write_run(tmp_path / "a", rows_of(episode_return=1.0, kl=kl, **{"hp/b1": b1}))
    fig = runs_figure([run], smooth_weight=0.0)
    fig.canvas.draw()
    ax = panel(fig, "kl")
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) >= 3 and not any("0.000" in s for s in labels), labels
    assert "10^{-7}" in ax.yaxis.get_offset_text().get_text().replace("\u2212", "-")
    ax = panel(fig, "hp/b1")
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) >= 3 and all(len(s) <= 6 for s in labels), labels


def test_plot_runs_writes_a_png_and_checks_first(tmp_path):
    run = write_run(tmp_path / "a", rows_of(episode_return=[1.0, 2, 3, 4, 5]))
    out = _plot.plot_runs([run], tmp_path / "sub" / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="has no metrics.jsonl"):
        _plot.plot_runs([tmp_path / "sub"], tmp_path / "q.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no metrics rows"):
        _plot.plot_runs([empty], tmp_path / "q.png")
