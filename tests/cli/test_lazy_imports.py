"""`inject-rl list` and `--help` without importing jax (issue 15 item 8): the listing is stored
the first time (in the compilation cache directory) and read from there after; help imports
nothing heavy. No timings here: which modules a command imports is what decides them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests._cli import ok, subprocess_env

HEAVY = ("jax", "haiku", "optax", "rlax", "orbax")


def _imported(args, env) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Runs `python -X importtime -m inject_rl.cli *args`; returns it and the top-level
    modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "inject_rl.cli", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    modules = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return proc, modules


@pytest.fixture
def env(tmp_path):
    return subprocess_env(tmp_path / "cache")


def test_list_imports_jax_once_then_reads_the_stored_listing(env, tmp_path):
    cold, cold_modules = _imported(["list"], env)
    ok(cold)
    assert "jax" in cold_modules  # the first listing reads the agents
    assert list((tmp_path / "cache" / "listing").glob("*.json"))
    warm, warm_modules = _imported(["list"], env)
    ok(warm)
    assert warm.stdout == cold.stdout
    assert not warm_modules & set(HEAVY), warm_modules & set(HEAVY)


def test_the_stored_listing_is_what_the_modules_say(env):
    from inject_rl.cli import _listing

    proc, _ = _imported(["list"], env)
    assert ok(proc).stdout.splitlines() == _listing.lines(_listing.collect())


@pytest.mark.parametrize(
    "args",
    [["--help"], ["eval", "--help"], ["plot", "--help"], ["list", "--help"]],
    ids=["main", "eval", "plot", "list"],
)
def test_help_imports_no_jax(args, env):
    proc, modules = _imported(args, env)
    assert ok(proc).stdout.startswith("usage: inject-rl")
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_train_help_lists_the_agents_fields_without_jax_once_stored(env):
    ok(_imported(["list"], env)[0])  # stores the listing
    proc, modules = _imported(["train", "--help"], env)
    assert "ppo: clip_eps, ent_coef, learning_rate" in ok(proc).stdout
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_a_damaged_stored_listing_is_read_again(env, tmp_path):
    ok(_imported(["list"], env)[0])
    (path,) = (tmp_path / "cache" / "listing").glob("*.json")
    good = path.read_bytes()
    path.write_bytes(good[:-10])  # torn
    proc, modules = _imported(["list"], env)
    assert "phys2d/CartPole-v1" in ok(proc).stdout and "jax" in modules
    assert path.read_bytes() == good


def test_a_stored_listing_of_another_shape_is_collected_again(tmp_path, monkeypatch):
    # A checksum-valid entry of another shape made `list` fail with KeyError 'description'.
    import json

    from inject_rl import cache
    from inject_rl.cli import _listing

    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", str(tmp_path))
    path = _listing._path()
    cache.write_entry(path, {"format": _listing.FORMAT}, b'{"agents": [{"name": "ppo"}]}')
    assert "ppo" in "\n".join(_listing.lines(_listing.listing()))
    assert _listing._well_formed(json.loads(cache.read_entry(path)[1]))  # stored anew


def test_the_key_follows_the_sources_and_the_agents_of_packages(monkeypatch):
    from inject_rl.cli import _listing

    key = _listing.key()
    assert _listing.key() == key
    monkeypatch.setattr(_listing.cache, "source_digest", lambda package: "edited")
    edited = _listing.key()
    assert edited != key
    monkeypatch.setattr(_listing.importlib.metadata, "entry_points", lambda group: [_Ep()])
    assert _listing.key() != edited


class _Ep:
    name, value, dist = "mine", "my_pkg:AGENT", None


def test_without_a_cache_directory_list_reads_the_modules(env, tmp_path):
    env = {**env, "INJECT_RL_COMPILE_CACHE": "off"}
    proc, modules = _imported(["list"], env)
    assert "phys2d/CartPole-v1" in ok(proc).stdout and "jax" in modules
    assert not (tmp_path / "cache").exists()


def test_an_agent_registered_in_this_process_is_listed_but_not_stored(tmp_path, monkeypatch):
    import dataclasses
    import json

    from inject_rl import agents, cache
    from inject_rl.cli import _listing

    monkeypatch.setenv("INJECT_RL_COMPILE_CACHE", str(tmp_path))
    mine = dataclasses.replace(agents.get("ppo"), name="mine", description="registered here")
    agents.register("mine", mine)
    try:
        listed = _listing.listing()["agents"]
        assert listed[-1]["name"] == "mine" and listed[-1]["description"] == "registered here"
        (path,) = (tmp_path / _listing.DIRECTORY).glob("*.json")
        stored = json.loads(cache.read_entry(path)[1])["agents"]
        assert [a["name"] for a in stored] == list(agents.BUILTIN)  # what every process sees
    finally:
        agents._registered.pop("mine", None)
