"""`--tensorboard` and `--wandb PROJECT` (issue 15 item 3): the rows of metrics.jsonl, read back
from TensorBoard's event files and from W&B's offline run file; a missing extra is a one-line
error that writes nothing."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from inject_rl import runs
from tests._cli import TINY, cli, ok, subprocess_env


def events(path: Path) -> list:
    """The `Event` protos of a TensorBoard event file (TFRecord framing: length, its crc, the
    record, its crc)."""
    from tensorboardX.proto.event_pb2 import Event

    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        out.append(Event.FromString(data[pos + 12 : pos + 12 + length]))
        pos += 12 + length + 4
    return out


def scalars(paths: list[Path]) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of the event files `paths`, later ones overriding earlier ones."""
    out: dict[str, dict[int, float]] = {}
    for path in paths:
        for event in events(path):
            for v in event.summary.value:
                out.setdefault(v.tag, {})[event.step] = v.simple_value
    return out


def event_files(run: Path) -> list[Path]:
    return sorted((run / runs.TENSORBOARD).glob("events.out.tfevents.*"))


def wandb_history(run_file: Path) -> list[dict]:
    """The history rows of a W&B `.wandb` run file (LevelDB log framing: 7-byte file header,
    32 KiB blocks of records with a 7-byte header each; every record a `Record` proto)."""
    from wandb.proto.wandb_internal_pb2 import Record

    block, header = 32768, 7
    data = run_file.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending, rows = header, b"", []
    while pos + header <= len(data):
        if block - pos % block < header:  # the rest of a block is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        if length == 0 and kind == 0:
            break
        chunk = data[pos + header : pos + header + length]
        pos += header + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full/first, middle/last
        if kind not in (1, 4):
            continue
        record = Record.FromString(pending)
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in items})
    return rows


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = subprocess_env(tmp_path_factory.mktemp("compile-cache"))
    e["WANDB_MODE"] = "offline"
    e["WANDB_SILENT"] = "true"
    return e


@pytest.fixture(scope="module")
def logged(env, tmp_path_factory):
    """A 128-step PPO run (4 host calls, a checkpoint every 2) with both loggers."""
    cwd = tmp_path_factory.mktemp("logged")
    (cwd / "tiny.json").write_text(json.dumps(TINY))
    ok(
        cli(
            ["train", "--out", "run", "--config", "tiny.json", "--steps", 128, "--quiet"]
            + ["--eval-episodes", 1, "--checkpoint-every", 64, "--tensorboard", "--wandb", "proj"]
            + ["--hp", "learning_rate=kl_target(1e-3, target=0.01)"],
            env,
            cwd,
        )
    )
    return cwd / "run"


def _rows(run: Path) -> list[dict]:
    return runs.read_metrics(run / runs.METRICS)


@pytest.mark.slow
def test_tensorboard_holds_every_row(logged):
    (path,) = event_files(logged)
    values = scalars([path])
    rows = _rows(logged)
    assert [r["step"] for r in rows] == [32, 64, 96, 128]
    for name in ("loss", "kl", "hp/learning_rate", "wall_s", "episode_count"):
        expected = {r["step"]: r[name] for r in rows if r[name] is not None}
        assert values[name].keys() == expected.keys(), name
        for step, value in expected.items():  # TensorBoard keeps float32
            assert values[name][step] == np.float32(value), (name, step)
    assert "step" not in values
    # NaN (no episode ended in the call) is left out, as metrics.jsonl writes null.
    missing = [r["step"] for r in rows if r["episode_return"] is None]
    assert not set(missing) & set(values.get("episode_return", {}))


@pytest.mark.slow
def test_wandb_offline_run_holds_every_row(logged):
    record = json.loads((logged / runs.CONFIG).read_text())
    run_id = record["logging"]["wandb"]["id"]
    assert record["logging"] == {"tensorboard": True, "wandb": {"project": "proj", "id": run_id}}
    (run_file,) = (logged / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    history = wandb_history(run_file)
    rows = _rows(logged)
    assert [h["_step"] for h in history] == [r["step"] for r in rows]
    for h, r in zip(history, rows, strict=True):
        for name in ("loss", "kl", "hp/learning_rate", "wall_s"):
            assert h[name] == r[name], name  # JSON doubles: exact


@pytest.mark.slow
def test_resume_keeps_the_loggers_and_the_wandb_run(logged, env, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(logged, run)
    shutil.rmtree(run / runs.CHECKPOINTS / "4")  # interrupted after the checkpoint at call 2
    ok(cli(["train", "--out", "run", "--resume", "--quiet", "--eval-episodes", 1], env, tmp_path))
    before = json.loads((logged / runs.CONFIG).read_text())["logging"]
    assert json.loads((run / runs.CONFIG).read_text())["logging"] == before
    run_id = before["wandb"]["id"]
    assert len(list((run / "wandb").glob(f"offline-run-*-{run_id}"))) == 2  # one W&B run id
    old, new = event_files(run)
    assert sorted(scalars([old])["loss"]) == [32, 64, 96, 128]
    assert sorted(scalars([new])["loss"]) == [96, 128]  # the calls after the checkpoint
    # ... and TensorBoard is told to discard the old file's events from step 65 on.
    from tensorboardX.proto.event_pb2 import SessionLog

    starts = [e.step for e in events(new) if e.session_log.status == SessionLog.START]
    assert starts == [65]
    rows = _rows(run)
    assert scalars([old, new])["loss"] == {r["step"]: np.float32(r["loss"]) for r in rows}


@pytest.mark.slow
def test_without_the_flags_nothing_but_metrics(env, tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    ok(
        cli(
            ["train", "--out", "run", "--config", "tiny.json", "--steps", 32, "--quiet"]
            + ["--eval-episodes", 1],
            env,
            tmp_path,
        )
    )
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert runs.TENSORBOARD not in names and "wandb" not in names
    assert json.loads((tmp_path / "run" / runs.CONFIG).read_text())["logging"] == {
        "tensorboard": False,
        "wandb": None,
    }


@pytest.mark.parametrize(
    "module, flags, extra",
    [("tensorboardX", ["--tensorboard"], "tensorboard"), ("wandb", ["--wandb", "p"], "wandb")],
    ids=["tensorboard", "wandb"],
)
def test_a_missing_extra_is_one_line_and_writes_nothing(
    module, flags, extra, tmp_path, monkeypatch, capsys
):
    from inject_rl.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    code = main(["train", "--config", "tiny.json", "--steps", "32", "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'inject-rl[{extra}]'" in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json"]
