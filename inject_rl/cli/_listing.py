"""What `inject-rl list` and `inject-rl train --help` show, kept between runs.

The agents, schedules and optimizers are read from their modules, which import jax, haiku and
rlax: about 1.5-2.5 s before anything is printed. The listing is therefore stored as JSON the
first time (in `<compile cache>/listing/`, see `inject_rl.cache`), under a key that changes
whenever what it shows can change: the source of `inject_rl` and its agents, the versions of
optax and gymnasium, the Python version and the agents of installed packages (entry points,
with their distributions' versions). Later calls read it without importing jax. With the cache
turned off (`INJECT_RL_COMPILE_CACHE=off`) every call reads the modules.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from inject_rl import agents, cache

FORMAT = 1
DIRECTORY = "listing"
# Distributions whose code decides what the listing shows (optimizer signatures, env ids;
# brax: its env names, or none when it is not installed).
_DISTRIBUTIONS = ("optax", "gymnasium", "brax")


def _agent(name: str) -> dict[str, Any]:
    from inject_rl.cli import _build as b

    try:
        agent = agents.get(name)
    except (ImportError, ValueError) as e:  # a broken third-party agent must not break `list`
        return {"name": name, "error": str(e)}
    return {
        "name": name,
        "description": agent.description,
        "loops": list(agent.loops),
        "injectable": list(agent.injectable),
        "hps": b.allowed_hps(agent, None),
    }


def _installed() -> list[str]:
    """The agents every process sees (the key covers them): built-in, then entry points."""
    names = list(agents.BUILTIN)
    eps = importlib.metadata.entry_points(group=agents.ENTRY_POINT_GROUP)
    return names + sorted({ep.name for ep in eps} - set(names))


def collect() -> dict[str, Any]:
    """The listing of the installed agents, read from the modules (imports jax)."""
    from inject_rl import envs, schedules
    from inject_rl.cli import _build as b

    return {
        "agents": [_agent(name) for name in _installed()],
        "jax_envs": envs.jax_env_ids(),
        "schedules": [schedules.signature(n) for n in schedules.SCHEDULES],
        "step_schedules": [schedules.signature(n) for n in schedules.STEP_SCHEDULES],
        "optimizers": [[n, b.optimizer_hps(f)] for n, f in b.OPTIMIZERS.items()],
    }


def key() -> str:
    """The cache key of the listing (reads sources and package metadata; imports no jax)."""
    h = hashlib.sha256(f"{FORMAT}\0{sys.version_info[:2]}".encode())
    for dist in _DISTRIBUTIONS:
        h.update(f"\0{dist}={cache.version(dist)}".encode())
    for package in cache.TRACED_PACKAGES:
        h.update(f"\0{package}:{cache.source_digest(package)}".encode())
    for ep in sorted(
        importlib.metadata.entry_points(group=agents.ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        dist = ep.dist.name if ep.dist is not None else None
        h.update(f"\0{ep.name}={ep.value}@{dist}={cache.version(dist)}".encode())
    return h.hexdigest()[:40]


def _path() -> Path | None:
    directory = cache.resolve_dir()
    return None if directory is None else directory / DIRECTORY / f"{key()}.json"


_AGENT_KEYS = frozenset(("name", "description", "loops", "injectable", "hps"))
_KEYS = frozenset(("agents", "jax_envs", "schedules", "step_schedules", "optimizers"))


def _well_formed(data: Any) -> bool:
    """Whether `data` has the shape `collect` gives (a checksum-valid entry of another writer's
    may not: `list` then failed with a KeyError)."""
    if not isinstance(data, dict) or set(data) != _KEYS or not isinstance(data["agents"], list):
        return False
    return all(
        isinstance(a, dict) and ({"name", "error"} <= a.keys() or _AGENT_KEYS <= a.keys())
        for a in data["agents"]
    )


def _stored() -> dict[str, Any]:
    path = _path()
    if path is not None:
        try:
            header, payload = cache.read_entry(path)
            if header.get("format") == FORMAT and _well_formed(data := json.loads(payload)):
                return data
        except (OSError, ValueError):  # absent, torn or foreign: collect it again
            pass
    data = collect()
    if path is not None:
        try:
            cache.write_entry(path, {"format": FORMAT}, json.dumps(data).encode())
        except OSError:  # a read-only cache directory: list without storing
            pass
    return data


def listing() -> dict[str, Any]:
    """The listing: from the cache when it holds this key's, else collected (and stored).
    Agents registered in this process (`inject_rl.agents.register`), which no key can know,
    are read from their (already imported) declarations."""
    data = _stored()
    known = {a["name"]: a for a in data["agents"]}
    data["agents"] = [known.get(n) or _agent(n) for n in agents.names()]
    return data


def injectable(data: dict[str, Any]) -> dict[str, list[str] | str]:
    """Agent name -> its injectable Config fields, or the error that made it unavailable."""
    return {
        a["name"]: a.get("injectable", f"unavailable: {a.get('error')}") for a in data["agents"]
    }


def lines(data: dict[str, Any]) -> list[str]:
    """`inject-rl list`'s output."""
    out = ["agents:"]
    for a in data["agents"]:
        if "error" in a:
            out.append(f"  {a['name']:6s} (unavailable: {a['error']})")
            continue
        out.append(f"  {a['name']:6s} {a['description']} [{', '.join(a['loops'])}]")
        out.append(f"         --hp: {a['hps']}")
    out.append("environments (loop):")
    out += [f"  {env_id:24s} anakin (in-graph, pmapped)" for env_id in data["jax_envs"]]
    if any(env_id.startswith("brax/") for env_id in data["jax_envs"]):
        out.append(
            "  brax/<name>@<backend>    a brax env on another physics backend (default "
            "generalized; positional, spring, mjx)"
        )
    out.append("  any other gymnasium id needs the host loop (sebulba), when an agent supports it;")
    out.append("  --vectorization sync|async picks its gymnasium vector env")
    out.append(
        "  envpool/<TaskId>         sebulba on envpool's C++ vector envs (envpool/Pong-v5: "
        "84x84x4 frames; pip install 'inject-rl[envpool]')"
    )
    out.append("schedules (--hp NAME='SPEC'):")
    out += [f"  {s}" for s in data["schedules"]]
    out.append("optax step schedules (inside warmup/clip/spike_guard/from_step_schedule):")
    out += [f"  {s}" for s in data["step_schedules"]]
    out.append("optimizers (--opt):")
    out += [f"  {name:8s} {', '.join(hps)}" for name, hps in data["optimizers"]]
    return out
