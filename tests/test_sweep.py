"""inject_rl.sweep: grid x seeds cells, one program on device, in turn on host envs."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from inject_rl import sweep
from inject_rl.agents import get

PPO = get("ppo")


@pytest.fixture(scope="module")
def result():
    cfg = PPO.config_for("phys2d/CartPole-v1", total_steps=3_000)
    return sweep.run(PPO, cfg, grid={"lr_init": [1e-4, 3e-3]}, seeds=2, eval_episodes=4)


def test_every_cell_is_trained_with_its_values_and_seed(result):
    assert [(c["lr_init"], c["seed"]) for c in result.cells] == [
        (1e-4, 0),
        (1e-4, 1),
        (3e-3, 0),
        (3e-3, 1),
    ]
    for cell, m in zip(result.cells, result.metrics, strict=True):
        # PPO's default rate is kl_target from lr_init, bounded to [lr_init/1000, 10 lr_init].
        lr = m["hp/learning_rate"]
        assert lr.max() <= 10 * cell["lr_init"] * (1 + 1e-6)
        assert lr.max() > 1e-3 or cell["lr_init"] == 1e-4
        assert math.isfinite(cell["eval_return"]) and not cell["diverged"]
        assert cell["solved"] == (cell["eval_return"] >= 475.0)
    assert result.solved_at == 475.0


def test_time_at_bound_is_reported_for_a_bounded_rule(result):
    for cell, m in zip(result.cells, result.metrics, strict=True):
        lr = m["hp/learning_rate"]
        at = np.isclose(lr, cell["lr_init"] / 1000, rtol=1e-5) | np.isclose(
            lr, cell["lr_init"] * 10, rtol=1e-5
        )
        assert cell["at_bound"] == {"learning_rate": pytest.approx(at.mean())}


def test_points_table_csv_and_heatmap(result, tmp_path):
    points = result.points()
    assert [p["lr_init"] for p in points] == [1e-4, 3e-3]
    for p in points:
        cells = [c for c in result.cells if c["lr_init"] == p["lr_init"]]
        assert p["solved"] == sum(c["solved"] for c in cells) / 2
        assert p["eval_mean"] == pytest.approx(np.mean([c["eval_return"] for c in cells]))
        assert p["final_return"] == pytest.approx(np.mean([c["final_return"] for c in cells]))
    table = result.table().splitlines()
    assert len(table) == 4 and table[0].startswith("| lr_init | solved")
    assert "of 2" in table[2] and "learning_rate" in table[2]
    result.write_csv(tmp_path / "cells.csv")
    rows = list(csv.DictReader(open(tmp_path / "cells.csv")))
    assert len(rows) == 4 and float(rows[3]["lr_init"]) == 3e-3 and rows[3]["seed"] == "1"
    result.heatmap(tmp_path / "heatmap.png")
    assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_constant_rate_has_no_bound(tmp_path):
    cfg = PPO.config_for("phys2d/CartPole-v1", total_steps=1_000, learning_rate=1e-3)
    res = sweep.run(PPO, cfg, grid={"learning_rate": [1e-3, 1e30]}, eval_episodes=2)
    assert res.cells[0]["at_bound"] == {}
    assert res.cells[1]["diverged"] and not res.cells[1]["solved"]
    assert res.points()[1]["diverged"] == 1


@pytest.mark.slow
def test_host_env_cells_run_in_turn():
    cfg = PPO.config_for("CartPole-v1", total_steps=1_024, num_envs=4)
    res = sweep.run(PPO, cfg, grid={"lr_init": [1e-3]}, seeds=[3], eval_episodes=2)
    (cell,) = res.cells
    assert cell["seed"] == 3 and math.isfinite(cell["eval_return"])
    assert res.metrics[0]["step"][-1] >= 1_024


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(grid={}), "at least one field"),
        (dict(grid={"lr_init": []}), "at least one field"),
        (dict(grid={"seed": [1, 2]}), "sweep seeds with `seeds=`"),
        (dict(grid={"lr_init": [1e-3]}, seeds=[]), "seeds must be"),
        (dict(grid={"num_envs": [8, 16]}), "num_envs cannot differ"),
        (dict(grid={"log_std_init": [0.0, -1.0]}), "log_std_init differ"),  # discrete actions
    ],
)
def test_bad_sweeps_are_one_line(kwargs, message):
    cfg = PPO.config_for("phys2d/CartPole-v1", total_steps=1_000)
    with pytest.raises(ValueError, match=message):
        sweep.run(PPO, cfg, **kwargs)


def test_solved_thresholds():
    assert sweep.solved_threshold("phys2d/CartPole-v1") == 475.0
    assert sweep.solved_threshold("Acrobot-v1") == -100.0
    assert sweep.solved_threshold("phys2d/Pendulum-v0") == -250.0
    assert sweep.solved_threshold("no_such_module:Nope-v0") is None
