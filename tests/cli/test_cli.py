"""The `inject-rl` CLI as a user runs it: a subprocess per command.

Budgets are tiny (32 env steps per host call); a per-module compilation cache makes every run
after the first load its compiled step instead of compiling it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests._cli import TINY, cli, command, ok, subprocess_env

HPS = [
    "--hp",
    "learning_rate=kl_target(1e-3, target=0.01)",
    "--hp",
    "b1=plateau(0.9, factor=1.05, max_value=0.99)",
    "--hp",
    "ent_coef=0.01",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return subprocess_env(tmp_path_factory.mktemp("compile-cache"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "tiny.json").write_text(json.dumps(TINY))
    (d / "bad_field.json").write_text(json.dumps({**TINY, "bogus": 1}))
    return d


def final_leaves(run_dir: Path) -> dict[str, np.ndarray]:
    from inject_rl.runs import Checkpointer

    ckpt = Checkpointer(run_dir / "checkpoints")
    leaves, _ = ckpt.restore_leaves(ckpt.latest_step())
    ckpt.close()
    return leaves


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


def png_size(path) -> tuple[int, int]:
    data = Path(path).read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def trained(env, files, tmp_path_factory):
    """A 256-step PPO run (8 host calls, a checkpoint every 2) with three injected --hp."""
    cwd = tmp_path_factory.mktemp("trained")
    proc = ok(
        cli(
            [
                "train",
                "--out",
                "run",
                "--config",
                files / "tiny.json",
                "--steps",
                256,
                "--checkpoint-every",
                64,
                "--eval-episodes",
                1,
                *HPS,
            ],
            env,
            cwd,
        )
    )
    return cwd / "run", proc


def test_train_writes_a_reproducible_run_directory(trained):
    run, proc = trained
    assert {"config.json", "metrics.jsonl", "summary.json", "checkpoints", "params"} <= {
        p.name for p in run.iterdir()
    }
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["agent"], cfg["env"], cfg["seed"], cfg["steps"], cfg["devices"], cfg["opt"]) == (
        "ppo",
        "phys2d/CartPole-v1",
        0,
        256,
        1,
        "adam",
    )
    assert cfg["loop"] == "anakin"
    assert cfg["hp"]["b1"].startswith("plateau(0.9, signal='episode_return'")
    assert cfg["config"]["learning_rate"].startswith("kl_target(0.001, target=0.01")
    assert cfg["config"]["ent_coef"] == 0.01 and cfg["config"]["hidden"] == [8]

    def strict(name):
        raise AssertionError(f"non-JSON constant {name} in metrics.jsonl")

    rows = [
        json.loads(line, parse_constant=strict)
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(32, 257, 32))
    for key in (
        "wall_s",
        "episode_return",
        "loss",
        "kl",
        "hp/learning_rate",
        "hp/b1",
        "hp/ent_coef",
        "hp/clip_eps",
    ):
        assert all(key in r for r in rows), key
    assert rows[0]["hp/b1"] == 0.9 and rows[0]["hp/ent_coef"] == 0.01
    summary = json.loads((run / "summary.json").read_text())
    assert {"eval_return", "steps", "wall_s", "compile_s"} <= summary.keys()
    assert summary["steps"] == 256 and summary["compile_s"] > 0
    # stdout is not a TTY here: one plain progress line per host call, no carriage returns.
    progress = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert len(progress) == 8 and "\r" not in proc.stdout
    assert progress[-1].startswith("step 256/256 (100%)") and " lr " in progress[-1]


def test_eval(trained, env):
    run, _ = trained
    proc = ok(cli(["eval", run, "--episodes", 2], env, run.parent))
    assert proc.stdout.startswith("eval return ") and "2 greedy episodes" in proc.stdout


@pytest.fixture(scope="module")
def resumed(trained, env, tmp_path_factory):
    """`trained` cut back to its checkpoint after call 6, then resumed with `--resume` only."""
    run, _ = trained
    cwd = tmp_path_factory.mktemp("resumed")
    shutil.copytree(run, cwd / "run")
    shutil.rmtree(cwd / "run" / "checkpoints" / "8")
    shutil.rmtree(cwd / "run" / "params")
    (cwd / "run" / "summary.json").unlink()
    ok(cli(["train", "--out", "run", "--resume", "--quiet", "--eval-episodes", 1], env, cwd))
    return cwd / "run"


def test_resume_equals_uninterrupted_run_bitwise(trained, resumed):
    run, _ = trained
    assert_bitwise_equal(final_leaves(run), final_leaves(resumed))
    from inject_rl.runs import load_params

    a, b = load_params(run / "params"), load_params(resumed / "params")
    for module in a:
        for name in a[module]:
            assert a[module][name].tobytes() == b[module][name].tobytes()

    def rows(d):
        lines = (d / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in lines]

    assert rows(run) == rows(resumed)


def test_plot_overlays_runs(trained, resumed, env):
    run, _ = trained
    proc = ok(cli(["plot", run, resumed, "--out", "cmp.png"], env, resumed.parent))
    width, height = png_size(resumed.parent / "cmp.png")
    assert width in (800, 1200) and height > 0  # the layout: tests/runs/test_plot.py
    assert "cmp.png" in proc.stdout


def test_list(env, tmp_path):
    out = ok(cli(["list"], env, tmp_path)).stdout
    for text in (
        "ppo",
        "dqn",
        "phys2d/CartPole-v1",
        "anakin",
        "sebulba",
        "kl_target(init_value, target=0.01",
        "plateau(init_value",
        "warmup(schedule",
        "adamw",
        "weight_decay",
        "ent_coef",
    ):
        assert text in out, text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command, text",
    [
        (["--help"], "{train,sweep,eval,plot,list}"),
        (["train", "--help"], "--hp NAME=SPEC"),
        (["eval", "--help"], "--episodes"),
        (["plot", "--help"], "FILE.png"),
        (["list", "--help"], "schedules"),
    ],
    ids=["main", "train", "eval", "plot", "list"],
)
def test_help(command, text, capsys):
    from inject_rl.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(command)
    assert exit_.value.code == 0 and text in capsys.readouterr().out


@pytest.mark.slow  # trains through the CLI (the default suite's 10-minute budget)
def test_a_repeated_run_loads_its_programs_instead_of_tracing(env, files, tmp_path):
    args = ["train", "--config", files / "tiny.json", "--steps", 64, "--eval-episodes", 1]
    logged = {**env, "JAX_LOG_COMPILES": "1"}
    first = ok(cli([*args, "--out", "a"], logged, tmp_path))
    second = ok(cli([*args, "--out", "b"], logged, tmp_path))
    assert "Finished tracing flat_step" in first.stderr
    assert "Finished tracing flat_step" not in second.stderr
    assert_bitwise_equal(final_leaves(tmp_path / "a"), final_leaves(tmp_path / "b"))


@pytest.mark.slow  # three CLI processes train (13 s; the default suite's 10-minute budget)
def test_sigkill_after_a_checkpoint_then_resume_is_bitwise(env, files, tmp_path):
    """Kill -9 at a random point after the first checkpoint; --resume must end bitwise where an
    uninterrupted run ends. The reference run also joins a one-process jax.distributed group,
    which must not change a bit."""
    args = [
        "train",
        "--config",
        files / "tiny.json",
        "--steps",
        640,
        "--quiet",
        "--eval-episodes",
        1,
    ]
    cmd = command(args)
    victim = subprocess.Popen(
        [*cmd, "--out", "killed", "--checkpoint-every", "32"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    from inject_rl.loops import free_port

    reference = subprocess.Popen(
        [
            *cmd,
            "--out",
            "ref",
            "--coordinator",
            f"127.0.0.1:{free_port()}",
            "--num-processes",
            "1",
            "--process-id",
            "0",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 240
    while not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    delay = random.uniform(0.0, 0.4)  # 19 more calls, each saving a checkpoint, remain
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, f"finished before the kill ({delay=:.2f})"
    assert reference.wait(timeout=240) == 0, reference.stderr.read()

    ok(
        cli(
            ["train", "--out", "killed", "--resume", "--quiet", "--eval-episodes", 1], env, tmp_path
        )
    )
    assert_bitwise_equal(final_leaves(tmp_path / "ref"), final_leaves(tmp_path / "killed"))
    steps = [
        json.loads(x)["step"]
        for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(32, 641, 32))


# ---------------------------------------------------------------------------- bad input
# name -> (arguments after `train --out o`, words the one-line message must contain).
# The first group runs as subprocesses (the real entry point, a few at a time); the variants
# after it call `main` in this process: the same code path, without a jax start-up each.
BAD_SUBPROCESS = {
    "unknown_agent": (["--agent", "nope"], ["unknown agent 'nope'", "available: ppo", "dqn"]),
    "unknown_env": (["--env", "Nope-v9"], ["unknown env id 'Nope-v9'", "phys2d/CartPole-v1"]),
    "unknown_schedule": (
        ["--hp", "learning_rate=cosine(1e-3)"],
        ["unknown schedule 'cosine'", "kl_target", "plateau"],
    ),
    "continuous_env_dqn": (
        ["--agent", "dqn", "--env", "phys2d/Pendulum-v0"],
        ["discrete action space"],
    ),
}
BAD_IN_PROCESS = {
    "resume_without_checkpoint": (["--resume"], ["no checkpoint"]),
    "unknown_hp": (
        ["--hp", "gamma=0.9"],
        ["unknown hyperparameter 'gamma'", "ent_coef", "clip_eps", "b1"],
    ),
    "out_of_range": (["--hp", "learning_rate=kl_target(3e-4, target=-1)"], ["target must be in"]),
    "malformed_spec": (["--hp", "learning_rate=kl_target(3e-4"], ["malformed spec"]),
    "unknown_keyword": (
        ["--hp", "learning_rate=kl_target(3e-4, targt=0.01)"],
        ["no parameter 'targt'", "target=0.01"],
    ),
    "code_in_spec": (
        ["--hp", "learning_rate=__import__('os').system('touch pwned')"],
        ["is not allowed"],
    ),
    "hp_without_spec": (["--hp", "learning_rate"], ["NAME=SPEC"]),
    "negative_constant": (["--hp", "ent_coef=-0.1"], ["ent_coef must be"]),
    "unknown_optimizer": (["--opt", "nadam"], ["unknown optimizer 'nadam'", "adam, adamw, sgd"]),
    "unknown_config_field": (
        ["--config", "{inputs}/bad_field.json"],
        ["unknown ppo Config field(s) bogus", "allowed:", "num_envs"],
    ),
    "missing_config_file": (["--config", "nope.json"], ["no such file"]),
    "dqn_resume_without_checkpoint": (["--agent", "dqn", "--resume"], ["no checkpoint"]),
    "signal_not_sent": (
        [
            "--config",
            "{inputs}/tiny.json",
            "--steps",
            "32",
            "--hp",
            "learning_rate=plateau(1e-3, signal='td_error')",
        ],
        ["expected training signal 'td_error'", "'kl'"],
    ),
    "bad_int": (["--steps", "many"], ["invalid int value"]),
    "zero_devices": (["--devices", "0"], ["--devices must be >= 1"]),
    "too_many_devices": (["--devices", "64"], ["num_devices must be an integer in [1, "]),
    "distributed_partial": (["--num-processes", "2"], ["go together"]),
    "distributed_anakin": (
        ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "0"],
        ["host loop (sebulba)"],
    ),
    "distributed_bad_id": (
        ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
        ["--process-id must be in [0, 2)"],
    ),
}


def _check_bad(returncode: int, stderr: str, words: list[str], cwd: Path) -> None:
    assert returncode == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inject-rl"), stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert list(cwd.iterdir()) == [], "files were written"


@pytest.fixture(scope="module")
def bad_results(env, files, tmp_path_factory):
    """Runs every BAD_SUBPROCESS case, two at a time, each in its own empty directory."""

    def one(item):
        name, (args, _) = item
        cwd = tmp_path_factory.mktemp(name)
        args = [a.replace("{inputs}", str(files)) for a in args]
        return name, (cli(["train", "--out", "o", *args], env, cwd, timeout=240), cwd)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, BAD_SUBPROCESS.items()))


@pytest.mark.parametrize("name", list(BAD_SUBPROCESS), ids=list(BAD_SUBPROCESS))
def test_bad_input_subprocess(name, bad_results):
    proc, cwd = bad_results[name]
    _check_bad(proc.returncode, proc.stderr, BAD_SUBPROCESS[name][1], cwd)


@pytest.mark.parametrize("name", list(BAD_IN_PROCESS), ids=list(BAD_IN_PROCESS))
def test_bad_input_in_process(name, files, tmp_path, monkeypatch, capsys):
    from inject_rl.cli import main

    # `main` may set these for jax; keep them from leaking into other tests.
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    args, words = BAD_IN_PROCESS[name]
    code = main(["train", "--out", "o", *[a.replace("{inputs}", str(files)) for a in args]])
    _check_bad(code, capsys.readouterr().err, words, tmp_path)


def test_out_dir_holding_a_different_run(trained, monkeypatch, capsys):
    from inject_rl.cli import main

    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", "off")
    run, _ = trained
    before = sorted((str(p), p.stat().st_mtime_ns) for p in run.rglob("*"))
    assert main(["train", "--out", str(run), "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds a different run" in err and "config" in err and "Traceback" not in err
    assert sorted((str(p), p.stat().st_mtime_ns) for p in run.rglob("*")) == before


def test_a_total_that_is_not_whole_host_calls_gets_a_note():
    # `--steps 2048` trained 2560 env steps without a word; config.json keeps 2048.
    from inject_rl.agents import ppo
    from inject_rl.cli._train import rounding_note

    note = rounding_note(ppo.Config(total_steps=2048))
    assert note == (
        "inject-rl: note: --steps 2048 trains 2560 env steps (whole host calls of 2560)"
    )
    assert rounding_note(ppo.Config(total_steps=5120)) is None


@pytest.mark.slow  # trains through the CLI (the default suite's 10-minute budget)
def test_an_evaluation_that_cannot_end_leaves_a_finished_run_without_eval_return(
    files, tmp_path, monkeypatch, capsys
):
    # CliffWalking-v1 has no time limit, and a greedy policy that walks in circles never ends an
    # episode: the run trained and saved, then exited 1 with a traceback log and no summary.
    from inject_rl.cli import main
    from inject_rl.loops import _host_eval

    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", "off")
    monkeypatch.setattr(_host_eval, "UNLIMITED_EVAL_STEPS", 0)  # no episode ends in 0 steps
    monkeypatch.chdir(tmp_path)
    args = ["--config", str(files / "tiny.json"), "--env", "Blackjack-v1", "--steps", "64"]
    assert main(["train", "--out", "run", "--eval-episodes", "2", *args]) == 0
    out, err = capsys.readouterr()
    assert err.count("inject-rl: warning: no eval return: Blackjack-v1: 2 of 2") == 1, err
    assert "Traceback" not in err and "no eval return; run directory run" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["eval_return"] is None and summary["steps"] == 64
    assert (tmp_path / "run" / "params").is_dir() and not (tmp_path / "run" / "error.log").exists()
