"""`inject-rl train --population/--pbt` and `inject-rl sweep`, in process."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from inject_rl.agents import load_policy
from inject_rl.cli import main


@pytest.fixture(scope="module")
def population_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("pop")
    args = ["train", "--env", "phys2d/CartPole-v1", "--steps", "3072", "--quiet"]
    args += ["--population", "3", "--pbt", "learning_rate", "--pbt-interval", "2"]
    args += ["--hp", "learning_rate=1e-3", "--out", str(cwd / "run"), "--eval-episodes", "2"]
    assert main(args) == 0
    return cwd / "run"


@pytest.mark.slow  # trains through the CLI (the default suite's 10-minute budget)
def test_a_population_run_writes_one_row_per_member_and_call(population_run):
    rows = [json.loads(line) for line in (population_run / "metrics.jsonl").open()]
    calls = sorted({r["step"] for r in rows})
    assert len(rows) == 3 * len(calls)
    for step in calls:
        assert sorted(r["member"] for r in rows if r["step"] == step) == [0, 1, 2]
    copies = [r for r in rows if r["pbt/source"] >= 0]
    assert copies and all(0 <= r["pbt/source"] < 3 and r["pbt/copies"] >= 1 for r in copies)
    summary = json.loads((population_run / "summary.json").read_text())
    assert summary["best_member"] in (0, 1, 2) and summary["calls"] == len(calls)
    config = json.loads((population_run / "config.json").read_text())
    assert config["population"] == {
        "size": 3,
        "pbt": {"hyperparams": ["learning_rate"], "interval": 2},
    }


def test_a_population_run_has_its_own_program_key():
    from inject_rl.cli import _build, _train

    def built(population):
        return _build.build(
            agent_name="ppo",
            env_id="phys2d/CartPole-v1",
            steps=3072,
            seed=None,
            devices=None,
            hp={},
            opt=None,
            overrides={},
            population=population,
        )

    single = _train.program_key(built(None))
    three = _train.program_key(built({"size": 3, "pbt": None, "interval": None}))
    pbt = _train.program_key(built({"size": 3, "pbt": ["learning_rate"], "interval": None}))
    assert len({single, three, pbt}) == 3


@pytest.mark.slow  # trains through the CLI (the default suite's 10-minute budget)
def test_the_best_members_params_are_the_runs_policy(population_run):
    policy = load_policy(population_run)
    assert policy.act(np.zeros(4, np.float32)) in (0, 1)


@pytest.mark.slow
def test_a_population_run_resumes_bitwise(population_run, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--env", "phys2d/CartPole-v1", "--steps", "3072", "--quiet"]
    args += ["--population", "3", "--pbt", "learning_rate", "--pbt-interval", "2"]
    args += ["--hp", "learning_rate=1e-3", "--out", str(out), "--eval-episodes", "2"]
    args += ["--checkpoint-every", "1024"]
    assert main(args) == 0
    ckpts = sorted((out / "checkpoints").iterdir())
    assert len(ckpts) >= 2
    # Continue from the first checkpoint: the rows after it must come out the same.
    for c in ckpts[1:]:
        import shutil

        shutil.rmtree(c)
    full = (population_run / "metrics.jsonl").read_text().splitlines()
    assert main(["train", "--out", str(out), "--resume", "--quiet", "--eval-episodes", "2"]) == 0

    def strip(lines):
        return [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in lines]

    assert strip((out / "metrics.jsonl").read_text().splitlines()) == strip(full)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--pbt", "learning_rate"], "--pbt and --pbt-interval need --population"),
        (["train", "--population", "0"], "--population must be >= 1"),
        (["train", "--population", "2", "--env", "CartPole-v1"], "on in-graph envs"),
        (["train", "--population", "1", "--pbt", "learning_rate"], "at least 2 members"),
        (["train", "--population", "2", "--pbt", "a,,b"], "comma-separated names"),
        (["sweep", "--grid", "lr_init=abc"], "'abc' is not a finite number"),
        (["sweep", "--grid", "lr_init"], "expected FIELD=V1,V2"),
        (["sweep", "--grid", "nope=1,2"], "not a ppo Config field"),
        (["sweep", "--grid", "num_envs=4,8"], "num_envs cannot differ"),
        (["sweep", "--grid", "lr_init=1e-3,1e-3"], "repeated values"),
    ],
)
def test_bad_population_and_sweep_input_is_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing written


def _sweep(*extra):
    return ["sweep", "--grid", "lr_init=1e-3,3e-3", "--seeds", "1", "--steps", "2048", *extra]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d.mkdir(), (d / "config.json").write_text("{}")), "is not empty"),
        (lambda d: (d.mkdir(), (d / "notes.md").write_text("mine")), "is not empty"),
    ],
    ids=["a_run", "other_files"],
)
def test_a_sweep_never_writes_into_a_directory_holding_something(
    make, message, tmp_path, monkeypatch, capsys
):
    # It used to refuse only a directory holding a sweep.json: a run's directory got the
    # sweep's files beside its checkpoints.
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "out")
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert main(_sweep("--out", "out")) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before


def test_a_sweep_takes_the_run_lock_of_its_directory(tmp_path, monkeypatch, capsys):
    from inject_rl import runs

    monkeypatch.chdir(tmp_path)
    with runs.RunLock(tmp_path / "out"):  # a live train writing there
        assert main(_sweep("--out", "out")) == 2
    assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # the lock's directory, removed with it


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--solved-at", "nan"], "--solved-at must be a finite return"),
        # Found while tracing: the directory claimed for it (and runs/) are removed again.
        (["--grid", "seed=1,2"], "seed"),
        # lr_init only feeds the default learning-rate schedule that --hp replaces: the rows
        # were identical runs under different labels.
        (["--hp", "learning_rate=3e-4"], "lr_init differ(s) between members but this run never"),
    ],
    ids=["solved_at_nan", "found_while_tracing", "a_field_the_run_never_reads"],
)
def test_a_refused_sweep_leaves_no_directory(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(_sweep(*extra)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # trains through the CLI
def test_a_sweep_whose_every_cell_diverges_exits_3_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(
            [
                "sweep",
                "--grid",
                "lr_init=1e30,1e31",
                "--seeds",
                "1",
                "--steps",
                "2048",
                "--eval-episodes",
                "2",
                "--quiet",
            ]
        )
    assert e.value.code == 3
    assert "diverged" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # trains through the CLI (the default suite's 10-minute budget)
def test_sweep_writes_its_table_csv_and_heatmap(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--env", "phys2d/CartPole-v1", "--grid", "lr_init=1e-3,3e-3"]
    args += ["--seeds", "2", "--steps", "2048", "--eval-episodes", "2", "--quiet"]
    assert main(args) == 0
    out = tmp_path / "runs" / "sweep-ppo-phys2d-CartPole-v1"
    printed = capsys.readouterr().out
    assert "| lr_init | solved" in printed and "runs/sweep-ppo-phys2d-CartPole-v1" in printed
    record = json.loads((out / "sweep.json").read_text())
    assert [(c["lr_init"], c["seed"]) for c in record["cells"]] == [
        (1e-3, 0),
        (1e-3, 1),
        (3e-3, 0),
        (3e-3, 1),
    ]
    assert len(list(csv.DictReader((out / "cells.csv").open()))) == 4
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "table.md").read_text().startswith("| lr_init")
    # The same command again takes the next directory.
    assert main(args) == 0
    assert (tmp_path / "runs" / "sweep-ppo-phys2d-CartPole-v1-2" / "sweep.json").is_file()
