"""The program cache never runs code read from the cache directory (issue 12 item 11).

Format 1 pickled `programs/<key>.jaxprog`: a crafted entry ran its code before the "rebuilding"
warning. Entries are now JSON plus `jax.export` bytes; crafted files under the old and the new
names, and crafted JSON naming callables, are rebuilt with one warning and never execute. A
small learner defined here (optax state, typed PRNG key, dict/tuple/None nodes, a collective)
keeps these tests independent of any agent.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import uuid
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import cache, loops

OPT = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
W = jnp.array([1.0, -2.0, 0.5])
REBUILDING = "rebuilding unreadable program cache entry"


class Extra(NamedTuple):
    nothing: None  # a None node
    steps: tuple[jax.Array, list[jax.Array]]  # shape=(), dtype=int32; [shape=(2,), float32]


class State(NamedTuple):
    params: dict[str, jax.Array]  # {"w": shape=(3,), "b": shape=()}, float32
    opt_state: Any  # optax inject_hyperparams(adam) state
    key: jax.Array  # typed PRNG key
    extra: Extra


def init(index):
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    key = jax.random.fold_in(jax.random.key(0), index)
    return State(params, OPT.init(params), key, Extra(None, (jnp.int32(0), [jnp.zeros(2)])))


def iteration(state, axis_name):
    key, sub = jax.random.split(state.key)
    x = jax.random.normal(sub, (8, 3))

    def loss_fn(p):
        return jnp.mean((x @ p["w"] + p["b"] - x @ W) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = OPT.update(grads, state.opt_state, state.params)
    step, (acc,) = state.extra.steps
    extra = Extra(None, (step + 1, [acc + loss]))
    return State(optax.apply_updates(state.params, updates), opt_state, key, extra), {"loss": loss}


def train(key, make=init, step=iteration):
    calls = {"init": 0, "iteration": 0}

    def counted_init(index):
        calls["init"] += 1
        return make(index)

    def counted(state, axis_name):
        calls["iteration"] += 1
        return step(state, axis_name)

    res = loops.run(counted_init, counted, num_calls=3, iterations_per_call=2, program_key=key)
    return res, calls


def leaves(res) -> list[bytes]:
    out = [
        np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
        for x in jax.tree.leaves(res.state)
    ]
    return [x.dtype.str.encode() + x.tobytes() for x in out] + [res.metrics["loss"].tobytes()]


def entry(key) -> pathlib.Path:
    return pathlib.Path(cache.enable()) / "programs" / f"{key}.jaxexport"


class Payload:
    """Unpickling this creates `marker`: what an attacker's entry would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class Evil(tuple):
    """Looks like a NamedTuple to a duck-typed check, but constructing it runs code."""

    _fields = ("params", "opt_state", "key", "extra")
    marker = None

    def __new__(cls, *args):
        pathlib.Path(Evil.marker).touch()
        return super().__new__(cls, args)


@pytest.fixture(scope="module")
def uncached():
    return leaves(train(None)[0])


@pytest.fixture
def armed(tmp_path):
    """`(marker, pickle bytes that create it)`, checked to really fire."""
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe)))  # noqa: S301 - proves the payload is armed
    assert probe.exists()
    return tmp_path / "marker", pickle.dumps(Payload(tmp_path / "marker"))


def test_a_round_trip_loads_without_tracing_and_is_bitwise_equal(uncached):
    key = uuid.uuid4().hex
    first, calls = train(key)
    assert not first.programs_loaded and calls["iteration"] >= 1 and entry(key).is_file()
    header = json.loads(entry(key).read_bytes().partition(b"\n")[0])
    assert header["tree"] is not None  # module-level NamedTuples: the structure is plain data
    second, calls = train(key)
    assert second.programs_loaded and calls == {"init": 0, "iteration": 0}
    assert type(second.state) is State and type(second.state.extra) is Extra
    assert leaves(first) == leaves(second) == uncached


def test_pickles_under_the_old_and_the_new_names_never_run(armed, uncached, capsys):
    marker, payload = armed
    key = uuid.uuid4().hex
    legacy = entry(key).with_suffix(".jaxprog")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_bytes(payload)
    entry(key).write_bytes(payload)
    res, calls = train(key)
    assert not marker.exists()
    assert capsys.readouterr().err.count(REBUILDING) == 1 and not res.programs_loaded
    assert leaves(res) == uncached
    assert not legacy.exists()  # eviction deletes entries of the pickled format
    again, calls = train(key)
    assert again.programs_loaded and calls["iteration"] == 0 and not marker.exists()


def _forge(key, edit) -> None:
    """Rewrites the valid entry `key` with `edit(header, payload)`, its checksum matching."""
    header, payload = cache.read_entry(entry(key))
    del header["sha256"]
    header, payload = edit(header, payload)
    cache.write_entry(entry(key), header, payload)


def _pickle_payload(payload):
    def edit(header, _):
        return {**header, "init_bytes": len(payload) // 2}, payload

    return edit


def _tree(name):
    def edit(header, payload):
        fields = header["tree"]["fields"]
        return {**header, "tree": {"namedtuple": name, "fields": fields}}, payload

    return edit


NAMES = [
    "os:system",
    "pathlib:Path.touch",
    "builtins:exec",
    "subprocess:Popen",
    "never_imported_module:State",
    f"{__name__}:Evil",
]


@pytest.mark.parametrize("name", [None, *NAMES], ids=["pickle-payload", *NAMES])
def test_a_forged_entry_with_a_valid_checksum_never_runs_code(armed, uncached, capsys, name):
    """The checksum only detects corruption: a forged entry passes it, and is still rebuilt
    without running anything it names."""
    marker, payload = armed
    Evil.marker = marker
    key = uuid.uuid4().hex
    train(key)
    _forge(key, _pickle_payload(payload) if name is None else _tree(name))
    capsys.readouterr()
    res, calls = train(key)
    assert not marker.exists()
    assert capsys.readouterr().err.count(REBUILDING) == 1 and not res.programs_loaded
    assert leaves(res) == uncached and type(res.state) is State


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # torn: a writer that died mid-file
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # one flipped bit in the programs
        lambda b: b.replace(b'"format":2', b'"format":1', 1),  # another format
        lambda b: b"",
    ],
    ids=["torn", "bit-flip", "format", "empty"],
)
def test_a_damaged_entry_warns_once_and_is_rebuilt(uncached, capsys, damage):
    key = uuid.uuid4().hex
    train(key)
    entry(key).write_bytes(damage(entry(key).read_bytes()))
    capsys.readouterr()
    res, _ = train(key)
    assert capsys.readouterr().err.count(REBUILDING) == 1 and not res.programs_loaded
    assert leaves(res) == uncached
    assert train(key)[0].programs_loaded


def test_a_structure_it_cannot_name_is_traced_from_init_only(capsys):
    """A local class cannot be named in the entry: on load only `init` is traced (for the
    state's structure), never the step; the entry's leaves must match it."""

    class Local(NamedTuple):
        w: jax.Array

    def make(index):
        return Local(jnp.zeros(3))

    def step(state, axis_name):
        return Local(state.w + jax.lax.psum(1.0, axis_name)), {"loss": state.w.sum()}

    key = uuid.uuid4().hex
    first, _ = train(key, make, step)
    assert json.loads(entry(key).read_bytes().partition(b"\n")[0])["tree"] is None
    second, calls = train(key, make, step)
    assert second.programs_loaded and calls == {"init": 1, "iteration": 0}
    assert type(second.state) is Local and leaves(first) == leaves(second)
    np.testing.assert_array_equal(np.asarray(second.state.w), np.full((1, 3), 6.0))
    assert capsys.readouterr().err == ""


def test_an_entry_of_another_state_layout_is_rebuilt(capsys):
    """Where init is traced, an entry whose leaves differ from the state's is not used."""

    class Local(NamedTuple):
        w: jax.Array

    def step(state, axis_name):
        return Local(state.w + jax.lax.psum(1.0, axis_name)), {"loss": state.w.sum()}

    key = uuid.uuid4().hex
    train(key, lambda i: Local(jnp.zeros(3)), step)
    res, calls = train(key, lambda i: Local(jnp.zeros(4)), step)
    assert not res.programs_loaded and calls["iteration"] >= 1 and res.state.w.shape == (1, 4)
    assert capsys.readouterr().err.count("another state layout") == 1


SCRIPT = textwrap.dedent(
    """
    import json, sys
    from typing import NamedTuple
    import jax, jax.numpy as jnp, numpy as np
    from inject_rl import loops

    class State(NamedTuple):
        w: dict
        key: jax.Array

    traced = []

    def init(index):
        traced.append("init")
        return State({"w": jnp.zeros(3)}, jax.random.key(1))

    def iteration(state, axis_name):
        traced.append("iteration")
        key, sub = jax.random.split(state.key)
        w = state.w["w"] + jax.lax.pmean(jax.random.normal(sub, (3,)), axis_name)
        return State({"w": w}, key), {"w": w.sum()}

    res = loops.run(init, iteration, num_calls=2, iterations_per_call=2, program_key=sys.argv[1])
    w = np.asarray(res.state.w["w"]).tolist()
    kind = type(res.state).__name__
    print(json.dumps({"loaded": res.programs_loaded, "traced": traced, "w": w, "type": kind}))
    """
)


def test_a_fresh_process_loads_the_entry_without_tracing(tmp_path):
    """The real use: the entry written by one process is loaded by the next (its NamedTuple
    lives in `__main__`), tracing nothing, with the same result."""
    env = {**os.environ, cache.ENV_VAR: str(tmp_path / "cache")}
    key = uuid.uuid4().hex
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, key],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "warning" not in out.stderr, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert not first["loaded"] and "iteration" in first["traced"]
    assert second["loaded"] and second["traced"] == [] and second["type"] == "State"
    assert first["w"] == second["w"]
