"""Issue 12 item 12: an output that cannot be written is one line, found before any work
(inject_rl.runs.plot_runs, check_run_dir; `inject-rl plot`)."""

from __future__ import annotations

import os

import pytest

from inject_rl import runs

# name -> (path of the output under tmp_path, words of the message).
UNWRITABLE = {
    "a_directory": ("dir.png", "is a directory"),
    "under_a_file": ("file.txt/p.png", "is not a directory"),
    "deep_under_a_file": ("file.txt/a/b/p.png", "is not a directory"),
}


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / runs.METRICS).write_text('{"step": 32, "episode_return": 9.0}\n')
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "file.txt").write_text("x")
    return d


def _files(tmp_path):
    return sorted(str(p) for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("name", list(UNWRITABLE), ids=list(UNWRITABLE))
def test_plot_to_an_unwritable_path_is_one_value_error(run_dir, tmp_path, name):
    path, words = UNWRITABLE[name]
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=words) as e:
        runs.plot_runs([run_dir], tmp_path / path)
    assert "\n" not in str(e.value) and "cannot write plot" in str(e.value)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("name", list(UNWRITABLE), ids=list(UNWRITABLE))
def test_cli_plot_to_an_unwritable_path_is_one_line_exit_2(run_dir, tmp_path, name, capsys):
    from inject_rl.cli import main

    path, words = UNWRITABLE[name]
    assert main(["plot", str(run_dir), "--out", str(tmp_path / path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("inject-rl: error: cannot write plot"), err
    assert words in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_plot_into_a_read_only_directory(run_dir, tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(ValueError, match="is not writable"):
        runs.plot_runs([run_dir], tmp_path / "ro" / "p.png")


@pytest.mark.parametrize("out", ["file.txt", "file.txt/run"], ids=["a_file", "under_a_file"])
def test_a_run_directory_that_cannot_be_written_is_refused_before_compiling(tmp_path, out):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="cannot write run directory .* is not a directory"):
        runs.check_run_dir(tmp_path / out, {}, resume=False, overwrite=False, identity=("agent",))
