"""`inject-rl eval` (issue 15 item 4): mean, standard deviation, min and max over episodes, the
same episodes as `Policy.evaluate`; `--video DIR` films episodes with gymnasium's RecordVideo,
a phys2d/* run on its host env's renderer."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

from tests._cli import TINY, cli, ok, subprocess_env

LINE = re.compile(
    r"^eval return (\S+) mean, (\S+) std, (\S+) min, (\S+) max \((\d+) greedy episodes, (\S+), "
    r"seed (\d+)\)$",
    re.M,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return subprocess_env(tmp_path_factory.mktemp("compile-cache"))


def _train(env, cwd, env_id):
    (cwd / "tiny.json").write_text(json.dumps(TINY))
    args = ["train", "--out", "run", "--config", "tiny.json", "--env", env_id, "--steps", 64]
    ok(cli([*args, "--quiet", "--eval-episodes", 1], env, cwd))
    return cwd / "run"


@pytest.fixture(scope="module")
def in_graph(env, tmp_path_factory):
    return _train(env, tmp_path_factory.mktemp("in_graph"), "phys2d/CartPole-v1")


@pytest.fixture(scope="module")
def host(env, tmp_path_factory):
    return _train(env, tmp_path_factory.mktemp("host"), "CartPole-v1")


@pytest.mark.slow
@pytest.mark.parametrize("run", ["in_graph", "host"])
def test_eval_prints_mean_std_min_max_of_the_evaluated_episodes(run, env, request):
    from inject_rl.agents import load_policy
    from inject_rl.cli import _eval

    run = request.getfixturevalue(run)
    proc = ok(cli(["eval", run, "--episodes", 7, "--seed", 3], env, run.parent))
    (match,) = LINE.findall(proc.stdout)
    mean, std, low, high = map(float, match[:4])
    policy = load_policy(run)
    assert match[4:] == ("7", policy.config.env_id, "3")
    returns = _eval.episode_returns(policy, 7, 3)
    assert returns.shape == (7,)
    assert (mean, std, low, high) == tuple(
        float(f"{x:.2f}") for x in (returns.mean(), returns.std(), returns.min(), returns.max())
    )
    # The very episodes of Policy.evaluate (and summary.json's eval_return): the same mean.
    assert np.isclose(returns.mean(), policy.evaluate(episodes=7, seed=3), rtol=1e-6)
    assert len(set(returns)) > 1, "episodes of different seeds should differ"


def _frames(path) -> list[np.ndarray]:
    """The frames of an mp4 (decoded by imageio-ffmpeg, which moviepy brings)."""
    import imageio_ffmpeg

    assert path.read_bytes()[4:8] == b"ftyp", f"{path} is no mp4"
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]


def _episode_length(policy, env_id: str, seed: int) -> int:
    import gymnasium

    env = gymnasium.make(env_id)
    obs, _ = env.reset(seed=seed)
    for n in range(1, 10_000):
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        if terminated or truncated:
            return n
    raise AssertionError("no episode end")


@pytest.mark.slow
def test_video_films_a_phys2d_run_on_its_host_env(in_graph, env, tmp_path):
    from inject_rl.agents import load_policy

    proc = ok(
        cli(
            ["eval", in_graph, "--episodes", 2, "--video", tmp_path / "videos"]
            + ["--video-episodes", 2],
            env,
            tmp_path,
        )
    )
    videos = sorted((tmp_path / "videos").iterdir())
    assert [v.name for v in videos] == [
        "ppo-CartPole-v1-seed0-episode-0.mp4",
        "ppo-CartPole-v1-seed0-episode-1.mp4",
    ]
    policy = load_policy(in_graph)
    for seed, video in enumerate(videos):  # episode i: CartPole-v1 reset with seed 0 + i
        frames = _frames(video)
        # RecordVideo draws the reset and every step: the greedy episode, frame by frame.
        assert len(frames) == _episode_length(policy, "CartPole-v1", seed) + 1
        assert frames[0].shape == (400, 600, 3) and frames[0].min() < 100  # the cart is drawn
        assert not np.array_equal(frames[0], frames[-1])  # and moves
    assert [f"video {v}" for v in videos] == [
        line for line in proc.stdout.splitlines() if line.startswith("video ")
    ]
    assert proc.stderr.strip() == "", proc.stderr  # no renderer or encoder chatter


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, words",
    [("moviepy", ["moviepy", "inject-rl[video]"]), ("pygame", ["cannot render", "[video]"])],
    ids=["moviepy", "renderer"],
)
def test_a_missing_video_extra_is_one_line_and_writes_nothing(
    module, words, in_graph, tmp_path, monkeypatch, capsys
):
    from inject_rl.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)  # restored after: the CLI may set it
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    code = main(["eval", str(in_graph), "--episodes", "2", "--video", "videos"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), err
    assert list(tmp_path.iterdir()) == []
