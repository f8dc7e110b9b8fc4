"""The program cache: a named run's init and step are exported once, then loaded without
tracing; loaded, exported and uncached programs give bitwise-equal runs, on one device and on
several (one program path for every device count, issue 16 item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import gymnasium
import jax
import numpy as np
import pytest

from inject_rl import cache, loops, runs
from inject_rl.agents import ppo
from inject_rl.agents._train import learner as agent_learner

CFG = ppo.Config(
    total_steps=512, num_envs=4, rollout_len=8, epochs=2, iterations_per_call=4, hidden=(8,)
)


def learner(cfg=CFG, opt=None, num_devices=1):
    """`(init, iteration, traces)`: `traces[0]` counts how often `iteration` is traced."""
    opt = opt or ppo.default_optimizer(cfg)
    init, iteration = agent_learner(ppo.AGENT, cfg, opt, num_devices)[1]
    traces = [0]

    def counted(state, axis_name):
        traces[0] += 1
        return iteration(state, axis_name)

    return init, counted, traces


def train(key, cfg=CFG, opt=None, num_devices=1):
    init, iteration, traces = learner(cfg, opt, num_devices)
    res = loops.run(
        init,
        iteration,
        num_calls=cfg.num_calls,
        iterations_per_call=cfg.iterations_per_call,
        num_devices=num_devices,
        program_key=key,
    )
    return res, traces[0]


def leaves(res) -> list[np.ndarray]:
    out = []
    for x in jax.tree.leaves(res.state):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out.append(np.asarray(x))
    return out + [np.asarray(res.metrics[k]) for k in sorted(res.metrics)]


def assert_bitwise(a, b):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def entry(key) -> Path:
    return Path(cache.enable()) / "programs" / f"{key}.jaxexport"


@pytest.fixture(scope="module")
def uncached():
    return train(None)


def test_second_run_with_a_key_traces_nothing_and_is_bitwise_equal(uncached):
    key = uuid.uuid4().hex
    first, traced = train(key)
    assert traced >= 1 and not first.programs_loaded and entry(key).is_file()
    second, retraced = train(key)
    assert retraced == 0 and second.programs_loaded
    assert_bitwise(first, second)
    assert_bitwise(first, uncached[0])  # caching never changes a result


def test_another_key_is_another_entry():
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    train(a)
    _, traced = train(b)
    assert traced >= 1 and entry(a).is_file() and entry(b).is_file()


def test_unreadable_entry_warns_once_and_is_rebuilt(uncached, capsys):
    key = uuid.uuid4().hex
    entry(key).parent.mkdir(parents=True, exist_ok=True)
    entry(key).write_bytes(b"not a program")
    res, traced = train(key)
    err = capsys.readouterr().err
    assert err.count("rebuilding unreadable program cache entry") == 1 and traced >= 1
    assert_bitwise(res, uncached[0])
    again, retraced = train(key)  # the rebuilt entry loads
    assert retraced == 0 and again.programs_loaded


def test_host_callbacks_run_uncached(uncached, capsys):
    """jax.export cannot serialize a host callback: such a run works, with the same programs
    under plain jit, and stores nothing."""
    init, iteration, _ = learner()

    def printing(state, axis_name):
        state, metrics = iteration(state, axis_name)
        jax.debug.print("kl {kl}", kl=metrics["kl"])
        return state, metrics

    key = uuid.uuid4().hex
    res = loops.run(init, printing, num_calls=CFG.num_calls, iterations_per_call=4, program_key=key)
    assert "kl " in capsys.readouterr().out
    assert not entry(key).exists() and not res.programs_loaded
    assert_bitwise(res, uncached[0])


def test_resume_from_a_state_uses_the_cached_step():
    key = uuid.uuid4().hex
    full, _ = train(key)
    init, iteration, traces = learner()
    half = loops.run(init, iteration, num_calls=2, iterations_per_call=4, program_key=key)
    rest = loops.run(
        init,
        iteration,
        num_calls=CFG.num_calls,
        iterations_per_call=4,
        state=half.state,
        start_call=2,
        program_key=key,
    )
    assert traces[0] == 0
    n = len(full.metrics)
    for x, y in zip(leaves(full)[:-n], leaves(rest)[:-n], strict=True):
        assert x.tobytes() == y.tobytes()


def test_fingerprint_covers_the_run_and_the_environment(monkeypatch):
    base = cache.fingerprint("run a")
    assert cache.fingerprint("run a") == base
    assert cache.fingerprint("run b") != base
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert cache.fingerprint("run a") != base


def test_fingerprint_follows_the_agents_source_from_any_directory(tmp_path, monkeypatch):
    # An editable install maps inject_rl.agents to the repository's agents/ folder. Hashed by
    # the name `agents`, it resolved to nothing outside the repository root: an edited agent
    # reran the old cached program.
    code = "from inject_rl import cache; print(cache.source_digest('inject_rl.agents'))"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert len(run.stdout.strip()) == 64, run.stdout
    edited = {}
    monkeypatch.setattr(cache, "source_digest", lambda package: edited.get(package, "x"))
    base = cache.fingerprint("run a")
    edited["inject_rl.agents"] = "y"
    assert cache.fingerprint("run a") != base


def test_only_the_most_recently_used_entries_are_kept(tmp_path, monkeypatch):
    from inject_rl.loops import _programs

    monkeypatch.setattr(_programs, "_KEEP", 2)
    for i, name in enumerate(["a", "b", "c"]):
        (tmp_path / f"{name}.jaxexport").write_bytes(b"x")
        os.utime(tmp_path / f"{name}.jaxexport", (1000 + i, 1000 + i))
    (tmp_path / "dead.tmp").write_bytes(b"x")
    os.utime(tmp_path / "dead.tmp", (1000, 1000))
    (tmp_path / "d.jaxprog").write_bytes(b"x")  # format 1 (pickled): never read, deleted
    _programs._evict(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jaxexport", "c.jaxexport"]


def test_an_entry_that_cannot_be_saved_warns_once_and_trains(uncached, monkeypatch, capsys):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "write_entry", full_disk)
    key = uuid.uuid4().hex
    res, traced = train(key)
    assert capsys.readouterr().err.count("program cache entry not saved") == 1
    assert traced >= 1 and not entry(key).exists()
    assert_bitwise(res, uncached[0])


def test_multi_device_runs_are_cached_too():
    """2 devices: the same exported shard_map programs as one device, an entry of their own
    (the one-device entry of the key is not theirs), a second run traces nothing, and every
    result is bitwise the same with replicas bitwise-equal."""
    key = uuid.uuid4().hex
    one, _ = train(key)
    first, traced = train(key, num_devices=2)
    assert traced >= 1 and not first.programs_loaded
    assert (entry(key).parent / f"{key}-2dev.jaxexport").is_file()
    second, retraced = train(key, num_devices=2)
    assert retraced == 0 and second.programs_loaded
    assert_bitwise(first, second)
    assert_bitwise(first, train(None, num_devices=2)[0])
    assert loops.replicas_equal(first.state.params) and loops.replicas_equal(first.state.opt_state)
    assert jax.tree.leaves(first.state)[0].shape[0] == 2
    assert not np.array_equal(first.metrics["loss"], one.metrics["loss"])  # really 2 devices


def test_an_entry_for_other_devices_warns_once_and_is_rebuilt(capsys):
    key = uuid.uuid4().hex
    train(key, num_devices=2)
    two = entry(key).parent / f"{key}-2dev.jaxexport"
    two.replace(entry(key))  # a 2-device entry where the one-device one belongs
    res, traced = train(key)
    assert capsys.readouterr().err.count("rebuilding unreadable program cache entry") == 1
    assert traced >= 1 and not res.programs_loaded


def test_two_device_resume_from_a_host_copy_is_bitwise():
    """A checkpoint hands the loop host arrays with the leading device axis: placed on the
    mesh again, the rest of the run is bitwise the uninterrupted one."""
    key = uuid.uuid4().hex
    full, _ = train(key, num_devices=2)
    init, iteration, _ = learner(num_devices=2)
    kw = dict(iterations_per_call=4, num_devices=2, program_key=key)
    half = loops.run(init, iteration, num_calls=2, **kw)
    arrays, layout = runs.host_copy(half.state)  # numpy, as a checkpoint restores them
    keys = layout["keys"]
    restored = jax.tree.unflatten(
        jax.tree.structure(half.state),
        [
            jax.random.wrap_key_data(a, impl=keys[str(i)]) if str(i) in keys else a
            for i, a in enumerate(arrays)
        ],
    )
    rest = loops.run(init, iteration, num_calls=CFG.num_calls, state=restored, start_call=2, **kw)
    n = len(full.metrics)
    for x, y in zip(leaves(full)[:-n], leaves(rest)[:-n], strict=True):
        assert x.tobytes() == y.tobytes()


def test_a_user_envs_module_is_part_of_the_cli_program_key(tmp_path, monkeypatch):
    # An in-graph env of a user's module is traced into the cached program, but its code was in
    # no key: edited (its reward x100), it reran the old program.
    from inject_rl.cli._train import env_code

    name = f"user_env_{uuid.uuid4().hex[:8]}"
    source = (
        "import gymnasium\n"
        "from gymnasium.envs.phys2d.cartpole import CartPoleJaxEnv\n"
        "SCALE = {}\n"
        "class Scaled(CartPoleJaxEnv):\n"
        "    pass\n"
        f"gymnasium.register('{name}/Scaled-v0', entry_point='{name}:Scaled', "
        "max_episode_steps=200)\n"
    )
    (tmp_path / f"{name}.py").write_text(source.format(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    env_id = f"{name}:{name}/Scaled-v0"
    try:
        before = env_code(env_id)
        assert list(before) == [name] and before[name] != "-"
        (tmp_path / f"{name}.py").write_text(source.format(100))
        assert env_code(env_id) != before
    finally:  # the import registered the id: other tests list the registry's jax envs
        gymnasium.registry.pop(f"{name}/Scaled-v0", None)
        sys.modules.pop(name, None)
    assert list(env_code("phys2d/CartPole-v1")) == ["gymnasium.envs.phys2d.cartpole"]
