"""Issue 12 "Nothing lost, nothing silently wrong": what `inject-rl` does with bad input and
with errors a run cannot survive (items 5, 6, 8, 10, 12, 14).

Bad input gets exit status 2 and one line `inject-rl: error: ...` naming the bad value and what
is allowed: no traceback, and nothing written (no run directory). Everything runs in-process
(`inject_rl.cli.main`) in an empty directory; the few training runs are tiny (256 env steps)
and shared through module-scoped fixtures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inject_rl import agents
from inject_rl.cli import main

# 2 envs x 8 steps x 4 iterations = 64 env steps per host call.
TINY = {
    "num_envs": 2,
    "rollout_len": 8,
    "epochs": 1,
    "num_minibatches": 1,
    "iterations_per_call": 4,
    "hidden": [8],
}
HUGE = "1" + "0" * 400  # an integer literal no float holds (OverflowError before the fix)


def refused(code: int, err: str, cwd: Path, *words: str) -> str:
    """Exit 2, one line naming `words`, no traceback, nothing written in `cwd`."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inject-rl: error: "), err
    assert len(lines[0]) < 400, lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert sorted(p.name for p in cwd.iterdir()) == ["in.json"], "files were written"
    return lines[0]


@pytest.fixture
def empty(tmp_path, monkeypatch) -> Path:
    """An empty working directory (but for in.json, written by `train`); `main` may set XLA_FLAGS
    and INJECT_RL_COMPILE_CACHE, kept from leaking into other tests."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.json").write_text(json.dumps(TINY))
    return tmp_path


def train(*args: str) -> int:
    return main(["train", "--out", "run", "--steps", "64", "--quiet", *args])


# name: (train arguments, words the error line must hold)
BAD_TRAIN = {
    # item 5: optimizer hyperparameters out of range (trained to NaN or silently on f45add6)
    "adam_b2_negative": (["--hp", "b2=-1"], ["b2", "-1", "[0, 1)"]),
    "adam_b1_above_1": (["--hp", "b1=1.5"], ["b1", "1.5", "[0, 1)"]),
    "adam_eps_negative": (["--hp", "eps=-1"], ["eps", "-1", ">= 0"]),
    "rmsprop_decay_7": (["--opt", "rmsprop", "--hp", "decay=7"], ["decay", "7", "[0, 1]"]),
    "sgd_momentum_1_5": (["--opt", "sgd", "--hp", "momentum=1.5"], ["momentum", "1.5", "[0, 1)"]),
    "adamw_weight_decay_negative": (
        ["--opt", "adamw", "--hp", "weight_decay=-5"],
        ["weight_decay", "-5", ">= 0"],
    ),
    # item 12: numbers no float holds (OverflowError tracebacks on f45add6)
    "hp_lr_1e999999": (["--hp", "learning_rate=1e999999"], ["learning_rate", "1e999999"]),
    "hp_b1_huge_int": (["--hp", f"b1={HUGE}"], ["b1", "too large for a float", "100000"]),
    "hp_lr_huge_int": (["--hp", f"learning_rate={HUGE}"], ["learning_rate", "too large"]),
    "hp_huge_int_in_schedule": (
        ["--hp", f"ent_coef=plateau(0.01, factor={HUGE})"],
        ["ent_coef", "too large", "plateau(0.01"],
    ),
    # item 12: sizes checked before anything is allocated (RESOURCE_EXHAUSTED after training on
    # f45add6, with the run directory written)
    "eval_episodes_1e9": (
        ["--eval-episodes", "1000000000"],
        ["--eval-episodes", "1000000000", "<= 10,000"],
    ),
    "devices_1e5": (["--devices", "100000"], ["--devices", "100000", "<= 256"]),
    "steps_huge": (["--steps", HUGE], ["--steps", "(401 digits)", "<= 2,147,483,647"]),
    "seed_negative": (["--seed", "-1"], ["--seed", ">= 0"]),
    "checkpoint_every_huge": (["--checkpoint-every", HUGE], ["--checkpoint-every", "digits"]),
}


@pytest.mark.parametrize("name", list(BAD_TRAIN), ids=list(BAD_TRAIN))
def test_bad_train_flags_are_refused(name, empty, capsys):
    args, words = BAD_TRAIN[name]
    code = train("--config", "in.json", *args)
    refused(code, capsys.readouterr().err, empty, *words)


# name: (agent, raw JSON text of `"field": value` added to TINY (or the agent's tiny config),
# words the error line must hold)
BAD_CONFIG = {
    # item 6: trained with a negative/zero/NaN learning rate on f45add6 (NaN, 1e309: recorded as
    # `"learning_rate": null` in config.json)
    "lr_negative": ("ppo", '"learning_rate": -1', ["learning_rate=-1", "> 0.0"]),
    "lr_zero": ("ppo", '"learning_rate": 0', ["learning_rate=0", "> 0.0"]),
    "lr_nan": ("ppo", '"learning_rate": NaN', ["learning_rate=nan", "finite"]),
    "lr_1e309": ("ppo", '"learning_rate": 1e309', ["learning_rate=inf", "finite"]),
    "lr_spec_1e309": ("ppo", '"learning_rate": "1e309"', ["learning_rate", "finite"]),
    "lr_huge_int": ("ppo", f'"learning_rate": {HUGE}', ["learning_rate=100000", "chars"]),
    "lr_huge_int_in_spec": ("ppo", f'"learning_rate": "plateau({HUGE})"', ["too large"]),
    # item 12: hidden widths (a training crash after writing / a numpy message on f45add6)
    "hidden_0": ("ppo", '"hidden": [0]', ["hidden=(0,)", "[1, 16384]"]),
    "hidden_string": ("ppo", '"hidden": "8"', ["hidden='8'", "layer widths"]),
    "hidden_empty": ("ppo", '"hidden": []', ["hidden=()", "non-empty"]),
    "hidden_bool": ("ppo", '"hidden": [true]', ["hidden=(True,)"]),
    "hidden_float": ("ppo", '"hidden": [8.5]', ["hidden=(8.5,)"]),
    "sac_hidden_0": ("sac", '"hidden": [0]', ["sac: hidden", "hidden=(0,)"]),
    # item 12: sizes (OverflowError / RESOURCE_EXHAUSTED on f45add6)
    "num_envs_1e9": ("ppo", '"num_envs": 1000000000', ["num_envs=1000000000", "4,194,304"]),
    "rollout_len_1e8": ("ppo", '"rollout_len": 100000000', ["rollout_len=100000000"]),
    "num_envs_huge": ("ppo", f'"num_envs": {HUGE}', ["num_envs", "2147483647"]),
    "impala_num_envs_1e9": ("impala", '"num_envs": 1000000000', ["impala", "num_envs"]),
    "dqn_buffer_1e9": ("dqn", '"buffer_size": 1000000000', ["dqn", "buffer_size", "16,777,216"]),
    "sac_batch_1e9": ("sac", '"batch_size": 1000000000', ["sac", "batch_size", "4,194,304"]),
    "dqn_eval_episodes_1e9": ("dqn", '"eval_episodes": 1000000000', ["eval_episodes", "10,000"]),
    "iterations_per_call_1e8": ("ppo", '"iterations_per_call": 100000000', ["1,048,576"]),
    "gamma_huge_int": ("ppo", f'"gamma": {HUGE}', ["gamma=100000", "[0, 1]"]),
    "seed_negative": ("ppo", '"seed": -1', ["seed=-1", "[0, 2147483647]"]),
    "seed_huge": ("ppo", f'"seed": {HUGE}', ["seed=100000", "[0, 2147483647]"]),
}
TINY_CONFIG = {
    "ppo": TINY,
    "impala": {"num_envs": 2, "rollout_len": 8, "iterations_per_call": 4, "hidden": [8]},
    "dqn": {
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
    },
    "sac": {
        "num_envs": 2,
        "train_every": 8,
        "gradient_steps": 2,
        "batch_size": 8,
        "buffer_size": 256,
        "learning_starts": 16,
        "iterations_per_call": 4,
        "hidden": [8],
    },
}
ENV = {
    "ppo": "phys2d/CartPole-v1",
    "dqn": "phys2d/CartPole-v1",
    "impala": "phys2d/CartPole-v1",
    "sac": "phys2d/Pendulum-v0",
}


@pytest.mark.parametrize("name", list(BAD_CONFIG), ids=list(BAD_CONFIG))
def test_bad_config_values_are_refused(name, empty, capsys):
    agent, entry, words = BAD_CONFIG[name]
    # Raw text: json.dumps cannot write 1e309 or a NaN literal as a user would.
    text = json.dumps(TINY_CONFIG[agent])[:-1] + f", {entry}}}"
    (empty / "in.json").write_text(text)
    code = train("--agent", agent, "--env", ENV[agent], "--config", "in.json")
    refused(code, capsys.readouterr().err, empty, *words)


def test_eval_of_a_config_json_without_config(empty, capsys):
    # item 12: KeyError 'config' traceback on f45add6
    (empty / "run").mkdir()
    (empty / "run" / "config.json").write_text(json.dumps({"agent": "ppo", "env": "x"}))
    before = sorted(p.name for p in empty.rglob("*"))
    code = main(["eval", "run"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("inject-rl: error: "), err
    assert "not a run directory" in err and "config" in err
    assert sorted(p.name for p in empty.rglob("*")) == before


@pytest.mark.parametrize(
    "args, words",
    [
        (["--episodes", "1000000000"], ["--episodes", "1000000000", "10,000"]),
        (["--seed", "-1"], ["--seed", "-1", ">= 0"]),
        (["--seed", HUGE], ["--seed", "(401 digits)"]),
    ],
    ids=["episodes_1e9", "seed_negative", "seed_huge"],
)
def test_eval_bad_flags(args, words, empty, capsys):
    code = main(["eval", "no-such-run", *args])
    refused(code, capsys.readouterr().err, empty, *words)


# -- errors a run cannot survive: one line, a log, exit status 1 (never 0) ----------------------


def _failing_train(write_first: bool):
    def fake(built, out, **kwargs):
        if write_first:
            out.mkdir(parents=True)
            (out / "config.json").write_text(json.dumps(built.record))
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 133000005328 bytes.")

    return fake


@pytest.mark.parametrize("write_first", [False, True], ids=["before_writing", "after_writing"])
def test_a_failed_run_exits_1_with_one_line_and_a_log(write_first, empty, monkeypatch, capsys):
    from inject_rl.cli import _train

    monkeypatch.setattr(_train, "train", _failing_train(write_first))
    code = train("--config", "in.json")
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inject-rl: error: RuntimeError: "), err
    assert "RESOURCE_EXHAUSTED" in lines[0] and "traceback in " in lines[0]
    log = Path(lines[0].rsplit("traceback in ", 1)[1])
    try:
        assert "Traceback" in log.read_text() and "RESOURCE_EXHAUSTED" in log.read_text()
        if write_first:
            assert log == Path("run") / "error.log"
        else:
            assert not (empty / "run").exists()
    finally:
        if not write_first:
            log.unlink()


# -- item 10: a schedule on every injectable field of every agent, through the CLI ---------------

# agent -> injectable field -> (initial value of its schedule, the hp/* series it drives)
SCHEDULED = {
    "ppo": {
        "clip_eps": (0.25, "hp/clip_eps"),
        "ent_coef": (0.015, "hp/ent_coef"),
        "learning_rate": (7e-4, "hp/learning_rate"),
    },
    "dqn": {"learning_rate": (1.1e-3, "hp/learning_rate"), "epsilon": (0.3, "hp/epsilon")},
    "impala": {"ent_coef": (0.017, "hp/ent_coef"), "learning_rate": (9e-4, "hp/learning_rate")},
    "sac": {
        "actor_lr": (3.1e-4, "hp/actor/learning_rate"),
        "critic_lr": (1.2e-3, "hp/critic/learning_rate"),
        "alpha_lr": (1.3e-3, "hp/alpha/learning_rate"),
    },
}


def _spec(start: float) -> str:
    """Falls from `start` to half of it as the smoothed episode return goes 0 -> 200."""
    return f"progress({start}, {start / 2}, low=0, high=200)"


def _train_scheduled(
    agent: str, fields: list[str], cwd: Path, config: dict | None = None, out: str | None = "run"
) -> int:
    """Trains `agent` for 256 env steps in `cwd`, a schedule on each of `fields` (--hp)."""
    (cwd / "in.json").write_text(json.dumps({**TINY_CONFIG[agent], **(config or {})}))
    hps = [a for f in fields for a in ("--hp", f"{f}={_spec(SCHEDULED[agent][f][0])}")]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
        return main(
            ["train", "--agent", agent, "--env", ENV[agent], "--config", "in.json"]
            + ["--steps", "256", "--quiet", "--eval-episodes", "1", *hps]
            + (["--out", out] if out else [])
        )


def _check_scheduled(agent: str, fields: list[str], run: Path) -> None:
    record = json.loads((run / "config.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4  # 256 env steps of 64 per host call
    for f in fields:
        start, series = SCHEDULED[agent][f]
        spec = record["hp"].get(f) or record["config"][f]  # --hp, else --config
        assert spec.startswith(f"progress({start}, {start / 2}"), record
        values = [row[series] for row in rows]
        assert all(start / 2 * (1 - 1e-6) <= v <= start * (1 + 1e-6) for v in values), values


def test_every_injectable_field_is_listed():
    assert {name: set(SCHEDULED[name]) for name in SCHEDULED} == {
        name: set(agents.get(name).injectable) for name in agents.BUILTIN
    }


SEED = 3
PPO_RUN = f"runs/ppo-phys2d-CartPole-v1-s{SEED}"


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    """PPO with a schedule on every injectable field: clip_eps and ent_coef from --hp, the
    learning rate and the seed from --config; trained into the default run directory (no --out)
    for 256 env steps. Returns the working directory."""
    cwd = tmp_path_factory.mktemp("ppo")
    config = {"seed": SEED, "learning_rate": _spec(SCHEDULED["ppo"]["learning_rate"][0])}
    assert _train_scheduled("ppo", ["clip_eps", "ent_coef"], cwd, config, out=None) == 0
    return cwd


def test_ppo_schedules_on_every_injectable_field(ppo_run):
    # item 10: ppo ent_coef/clip_eps schedules failed on f45add6 ("need the optimizer to carry
    # them")
    _check_scheduled("ppo", list(SCHEDULED["ppo"]), ppo_run / PPO_RUN)


@pytest.mark.parametrize(
    "agent",
    # impala and sac train through the CLI a few seconds longer: slow suite (10-minute budget)
    [
        "dqn",
        pytest.param("impala", marks=pytest.mark.slow),
        pytest.param("sac", marks=pytest.mark.slow),
    ],
)
def test_a_schedule_on_every_injectable_field(agent, tmp_path):
    # item 10: impala's ent_coef schedule failed on f45add6; every injectable field of the agent
    # has a schedule here, in one run.
    fields = list(SCHEDULED[agent])
    assert _train_scheduled(agent, fields, tmp_path) == 0
    _check_scheduled(agent, fields, tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize(
    "agent, field",
    [(a, f) for a in SCHEDULED for f in SCHEDULED[a]],
    ids=[f"{a}-{f}" for a in SCHEDULED for f in SCHEDULED[a]],
)
def test_a_schedule_on_one_injectable_field(agent, field, tmp_path):
    assert _train_scheduled(agent, [field], tmp_path) == 0
    _check_scheduled(agent, [field], tmp_path / "run")


# -- item 14: the default --out names the seed of --config; item 6: config.json records the given
# learning rate; item 8: eval --seed ------------------------------------------------------------


def test_default_out_names_the_seed_of_config(ppo_run):
    # item 14: f45add6 wrote runs/ppo-phys2d-CartPole-v1-s0 for a --config seed of 3
    assert [str(p.relative_to(ppo_run)) for p in (ppo_run / "runs").iterdir()] == [PPO_RUN]
    record = json.loads((ppo_run / PPO_RUN / "config.json").read_text())
    assert record["seed"] == SEED == record["config"]["seed"]


@pytest.mark.parametrize(
    "seed, overrides, name",
    [
        (None, {}, "ppo-phys2d-CartPole-v1-s0"),
        (None, {"seed": 5}, "ppo-phys2d-CartPole-v1-s5"),
        (7, {"seed": 5}, "ppo-phys2d-CartPole-v1-s7"),  # --seed wins over --config
        (None, {"seed": 5, "env_id": "CartPole-v1"}, "ppo-CartPole-v1-s5"),
        (None, {"seed": -1}, "ppo-phys2d-CartPole-v1-s0"),  # refused later, never a name
        (None, {"seed": int(HUGE)}, "ppo-phys2d-CartPole-v1-s0"),
    ],
    ids=["default", "config_seed", "flag_wins", "config_env", "bad_seed", "huge_seed"],
)
def test_default_out(seed, overrides, name):
    from inject_rl.cli import default_out

    assert default_out("ppo", None, seed, overrides) == Path("runs") / name


def test_config_json_records_the_given_learning_rate(ppo_run):
    # item 6: never `"learning_rate": null` for a value given in --config (a schedule here)
    record = json.loads((ppo_run / PPO_RUN / "config.json").read_text())
    start = SCHEDULED["ppo"]["learning_rate"][0]
    assert record["config"]["learning_rate"].startswith(f"progress({start}, {start / 2}, ")
    assert record["overrides"]["learning_rate"] == record["config"]["learning_rate"]


@pytest.mark.parametrize("value", [5e-4, 1, "3e-4"], ids=["float", "int", "spec"])
def test_the_record_holds_a_given_constant_learning_rate(value):
    # item 6, without training: the config.json record `build` makes (numbers, not null)
    from inject_rl.cli import _build

    built = _build.build(
        agent_name="ppo",
        env_id=None,
        steps=64,
        seed=None,
        devices=None,
        hp={},
        opt=None,
        overrides={**TINY, "learning_rate": value},
    )
    assert built.record["config"]["learning_rate"] == float(value)
    assert built.record["overrides"]["learning_rate"] == float(value)


def test_eval_seed_changes_the_episodes_and_repeats(ppo_run, monkeypatch, capsys):
    # item 8: f45add6 ignored --seed (the same return for every seed)
    monkeypatch.chdir(ppo_run)

    def eval_return(seed: int) -> str:
        assert main(["eval", PPO_RUN, "--episodes", "3", "--seed", str(seed)]) == 0
        out = capsys.readouterr().out
        assert f"seed {seed}" in out, out
        return out.split("eval return ", 1)[1].split()[0]

    returns = {seed: eval_return(seed) for seed in (0, 7, 123)}
    assert len(set(returns.values())) > 1, returns
    assert eval_return(7) == returns[7]
