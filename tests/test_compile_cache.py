"""Runs that differ only in injected hyperparameter values reuse the compiled training step.

Hyperparameters and schedule constants live in the optimizer state, not in the compiled
program (optax#577), so the persistent compilation cache (inject_rl.cache) serves the training
step of a second run, in a new process, even when its learning rate, KL target or entropy cost
differ.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from inject_rl.agents import ppo
    from inject_rl.agents._train import learner
    from inject_rl import envs, loops
    lr, target, ent = map(float, sys.argv[1:4])
    cfg = ppo.Config(total_steps=1024, num_envs=4, rollout_len=16, epochs=2, num_minibatches=2,
                     iterations_per_call=4, lr_init=lr, kl_target=target, ent_coef=ent)
    init, iteration = learner(ppo.AGENT, cfg, ppo.default_optimizer(cfg), 1)[1]
    res = loops.run(init, iteration, num_calls=cfg.num_calls,
                    iterations_per_call=cfg.iterations_per_call)
    print(json.dumps({"hit": res.step_cache_hit, "lr": float(res.metrics["hp/learning_rate"][0])}))
    """
)


def _run(cache_dir, *values):
    env = {**os.environ, "INJECT_RL_COMPILE_CACHE": str(cache_dir)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, values)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("compile-cache")


def test_first_run_compiles_the_training_step(cache_dir):
    assert _run(cache_dir, 1e-3, 0.02, 0.0)[0]["hit"] is False


def test_identical_run_loads_the_training_step(cache_dir):
    assert _run(cache_dir, 1e-3, 0.02, 0.0)[0]["hit"] is True


def test_other_hyperparameter_values_do_not_recompile_the_step(cache_dir):
    out, _ = _run(cache_dir, 3e-4, 0.005, 0.01)
    assert out["hit"] is True
    # ... and the new values are really used: after the first updates, 1.5 x 3e-4 (not x 1e-3).
    assert out["lr"] == pytest.approx(4.5e-4)


@pytest.mark.slow  # trains through the CLI (the default suite's 10-minute budget)
def test_cache_can_be_turned_off(tmp_path):
    assert _run("off", 1e-3, 0.02, 0.0)[0]["hit"] is False
    assert _run("off", 1e-3, 0.02, 0.0)[0]["hit"] is False


@pytest.mark.slow  # trains through the CLI (the default suite's 10-minute budget)
def test_unwritable_cache_dir_warns_once_and_trains(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out, stderr = _run(blocker / "cache", 1e-3, 0.02, 0.0)
    warnings = [line for line in stderr.splitlines() if "compilation cache disabled" in line]
    assert len(warnings) == 1, stderr
    assert out["hit"] is False


def test_an_entry_round_trips_as_json_and_bytes(tmp_path):
    from inject_rl import cache

    path = tmp_path / "programs" / "k.jaxexport"
    cache.write_entry(path, {"format": 2, "leaves": [[[1, 3], "float32", None]]}, b"\x00\n\xff")
    header, payload = cache.read_entry(path)
    assert payload == b"\x00\n\xff" and header["leaves"] == [[[1, 3], "float32", None]]
    assert [p.name for p in path.parent.iterdir()] == ["k.jaxexport"]  # no temporary left


@pytest.mark.parametrize(
    "content, error",
    [
        (b"", "no header line"),
        (b"not json\npayload", "Expecting value"),
        (b"[1, 2]\npayload", "header is a list"),
        (b'{"sha256": "0"}\npayload', "checksum mismatch"),
        (b"\x80\x04\x95.\npayload", "codec can't decode"),  # a pickle is never unpickled
    ],
    ids=["empty", "not-json", "not-an-object", "checksum", "pickle"],
)
def test_a_damaged_entry_is_a_value_error(tmp_path, content, error):
    from inject_rl import cache

    (tmp_path / "e").write_bytes(content)
    with pytest.raises(ValueError, match=error):
        cache.read_entry(tmp_path / "e")


def test_an_entry_that_cannot_be_written_leaves_nothing(tmp_path):
    from inject_rl import cache

    with pytest.raises(TypeError):
        cache.write_entry(tmp_path / "e", {"bad": object()}, b"")
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        cache.write_entry(tmp_path / "d", {}, b"x")  # a directory is in the way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
