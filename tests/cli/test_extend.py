"""`--resume --steps N` extends a finished run (issue 15 item 5). In-graph envs: bitwise the
uninterrupted N-step run (params, every checkpointed leaf, metrics). Host envs: the run goes on
from its last state, its rows kept, the envs restarted. Refused when the learner's program
depends on the total (dqn's default epsilon), or when N is short of the checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest

from inject_rl import runs
from tests._cli import TINY, cli, ok, subprocess_env

TINY_DQN = {
    "num_envs": 2,
    "train_every": 8,
    "gradient_steps": 2,
    "batch_size": 8,
    "buffer_size": 256,
    "learning_starts": 16,
    "target_update_every": 4,
    "eval_every": 0,
    "iterations_per_call": 4,
    "hidden": [8],
}
# Schedules whose states must carry over: the learning rate follows the KL, b1 the return.
HPS = [
    "--hp",
    "learning_rate=kl_target(1e-3, target=0.01)",
    "--hp",
    "b1=plateau(0.9, factor=1.05, max_value=0.99, patience=1)",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return subprocess_env(tmp_path_factory.mktemp("compile-cache"))


@pytest.fixture(scope="module")
def cwd(tmp_path_factory):
    d = tmp_path_factory.mktemp("extend")
    (d / "tiny.json").write_text(json.dumps(TINY))
    return d


def _train(env, cwd, out, steps, *more):
    args = ["train", "--out", out, "--config", "tiny.json", "--steps", steps, "--quiet"]
    return ok(cli([*args, "--eval-episodes", 2, "--checkpoint-every", 64, *more], env, cwd))


def _rows(run):
    rows = runs.read_metrics(run / runs.METRICS)
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def _leaves(run):
    ckpt = runs.Checkpointer(run / runs.CHECKPOINTS)
    try:
        return ckpt.latest_step(), ckpt.restore_leaves(ckpt.latest_step())[0]
    finally:
        ckpt.close()


def _same_bits(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), f"{k} differs"


@pytest.fixture(scope="module")
def extended(env, cwd):
    """A 128-step run extended to 256 with `--resume --steps 256` (no other option), and the
    uninterrupted 256-step run."""
    _train(env, cwd, "full", 256, *HPS)
    _train(env, cwd, "short", 128, *HPS)
    shutil.copytree(cwd / "short", cwd / "extended")
    proc = ok(
        cli(["train", "--out", "extended", "--resume", "--steps", 256, "--eval-episodes", 2]
            + ["--quiet"], env, cwd)
    )  # fmt: skip
    return cwd / "extended", cwd / "full", proc


@pytest.mark.slow
def test_extended_in_graph_run_is_bitwise_the_uninterrupted_run(extended):
    run, full, proc = extended
    assert "done: 256 env steps" in proc.stdout
    step, leaves = _leaves(run)
    full_step, full_leaves = _leaves(full)
    assert step == full_step == 8
    _same_bits(leaves, full_leaves)  # params, optimizer and schedule states, keys, env states
    a, b = runs.load_params(run / runs.PARAMS), runs.load_params(full / runs.PARAMS)
    for module in b:
        for name in b[module]:
            assert a[module][name].tobytes() == b[module][name].tobytes()
    assert _rows(run) == _rows(full)
    assert [r["step"] for r in _rows(run)] == list(range(32, 257, 32))
    record, full_record = (json.loads((d / runs.CONFIG).read_text()) for d in (run, full))
    assert record["steps"] == 256 and record["config"] == full_record["config"]
    summary, full_summary = (json.loads((d / runs.SUMMARY).read_text()) for d in (run, full))
    assert summary["steps"] == 256 and summary["eval_return"] == full_summary["eval_return"]


@pytest.mark.slow
def test_fewer_steps_than_the_checkpoint_are_refused(extended, env, cwd):
    run, _, _ = extended
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    proc = cli(["train", "--out", run.name, "--resume", "--steps", 128, "--quiet"], env, cwd)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "checkpoint is at env step 256" in lines[0], proc.stderr
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


@pytest.mark.slow
def test_extended_host_run_goes_on_from_its_state(env, cwd):
    """Host envs: the learner continues from the run's final state (its step counter, params,
    optimizer and schedule states, keys), its rows are kept; the envs restart from fresh resets,
    so the new rows are not those of an uninterrupted run (not asserted)."""
    _train(env, cwd, "host", 64, "--env", "CartPole-v1", *HPS)
    short_rows = runs.read_metrics(cwd / "host" / runs.METRICS)
    _, short_leaves = _leaves(cwd / "host")
    ok(cli(["train", "--out", "host", "--resume", "--steps", 128, "--quiet"], env, cwd))
    rows = runs.read_metrics(cwd / "host" / runs.METRICS)
    assert rows[:2] == short_rows  # wall_s included: restored from the checkpoint
    assert [r["step"] for r in rows] == [32, 64, 96, 128]
    assert json.loads((cwd / "host" / runs.CONFIG).read_text())["steps"] == 128
    step, leaves = _leaves(cwd / "host")
    assert step == 4
    assert int(leaves[".step"].reshape(-1)[0]) == 128
    assert int(short_leaves[".step"].reshape(-1)[0]) == 64


# -- which programs may be extended -------------------------------------------------------------


def _build(agent, steps, env_id=None, hp=None, overrides=None):
    from inject_rl.cli import _build as b

    return b.build(
        agent_name=agent,
        env_id=env_id,
        steps=steps,
        seed=0,
        devices=None,
        hp=hp or {},
        opt=None,
        overrides=overrides if overrides is not None else (TINY_DQN if agent == "dqn" else TINY),
    )


@pytest.mark.parametrize(
    "agent, env_id, hp",
    [
        ("ppo", None, {}),
        ("ppo", "CartPole-v1", {}),
        ("dqn", None, {"epsilon": "0.1"}),
        ("dqn", None, {"epsilon": "progress(1.0, 0.05, low=0, high=200)"}),
        ("dqn", "CartPole-v1", {"epsilon": "0.1"}),
    ],
    ids=["ppo", "ppo_host", "dqn_constant_epsilon", "dqn_epsilon_on_return", "dqn_host"],
)
def test_programs_that_do_not_depend_on_the_total_may_be_extended(agent, env_id, hp):
    from inject_rl.cli import _extend

    _extend.check_extension(_build(agent, 64_000, env_id, hp), _build(agent, 6_400, env_id, hp))


@pytest.mark.parametrize("env_id", [None, "CartPole-v1"], ids=["anakin", "sebulba"])
def test_dqns_default_epsilon_depends_on_the_total(env_id):
    from inject_rl.cli import _extend

    with pytest.raises(ValueError, match="epsilon_fraction") as e:
        _extend.check_extension(_build("dqn", 64_000, env_id), _build("dqn", 6_400, env_id))
    assert "--resume --steps 64000" in str(e.value) and "6400" in str(e.value)
    # Totals whose decay rounds to the same iteration count give the same program.
    _extend.check_extension(_build("dqn", 128, env_id), _build("dqn", 64, env_id))


def test_the_cli_refuses_to_extend_default_dqn_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from inject_rl.cli import main

    monkeypatch.chdir(tmp_path)
    built = _build("dqn", 6_400)
    (tmp_path / "run").mkdir()
    runs.write_json(tmp_path / "run" / runs.CONFIG, built.record)
    before = (tmp_path / "run" / runs.CONFIG).read_text()
    code = main(["train", "--out", "run", "--resume", "--steps", "64000", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--hp epsilon=" in lines[0], err
    assert [p.name for p in (tmp_path / "run").iterdir()] == [runs.CONFIG]
    assert (tmp_path / "run" / runs.CONFIG).read_text() == before
