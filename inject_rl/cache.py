"""JAX's persistent compilation cache, on by default for inject-rl's loops and CLI.

Users re-run the same command many times while tuning; with the cache a second run, or one that
changes only injected hyperparameter values or schedule constants (they live in the optimizer
state, not in the compiled program), loads the compiled training step instead of compiling it.

Where: `$INJECT_RL_COMPILE_CACHE` if set, else `$JAX_COMPILATION_CACHE_DIR` if set, else
`$XDG_CACHE_HOME/inject-rl/jax` (default `~/.cache/inject-rl/jax`). Turn it off with
`INJECT_RL_COMPILE_CACHE=off` (or `0`, `false`, `no`) or the CLI's `--no-compile-cache`.
A directory that cannot be written disables the cache with one warning line.

The same directory holds, under `programs/`, the exported one-device programs of named runs
(`inject_rl.loops.run(..., program_key=...)`; the CLI names every run with `fingerprint`), so a
repeated run also skips tracing and lowering. Those entries are written and read by
`write_entry` / `read_entry`: one line of JSON, then opaque bytes. Cached files are never
unpickled, evaluated or imported, so a crafted file in the cache cannot run code when read.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import sys
import tempfile

ENV_VAR = "INJECT_RL_COMPILE_CACHE"
_OFF = {"0", "off", "false", "no", "none", ""}
_state: dict[str, str | None] = {}


def default_dir() -> pathlib.Path:
    """The per-user cache directory used when no environment variable says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "inject-rl" / "jax"


def resolve_dir() -> pathlib.Path | None:
    """The cache directory the environment asks for, or None when the cache is turned off."""
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return None if value.strip().lower() in _OFF else pathlib.Path(value).expanduser()
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return pathlib.Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    return default_dir()


def enable(path: str | os.PathLike | None = None) -> str | None:
    """Turns the persistent compilation cache on (idempotent); returns its directory or None.

    Args:
      path: directory to use; None resolves it from the environment (see the module doc).

    Returns:
      The directory in use, or None when the cache is off or the directory is not writable
      (then one warning line goes to stderr).
    """
    target = pathlib.Path(path) if path is not None else resolve_dir()
    key = str(target)
    if key in _state:
        return _state[key]
    import jax

    if target is None:
        _state[key] = None
        return None
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target):
            pass
    except OSError as err:
        print(
            f"inject-rl: warning: compilation cache disabled, cannot write {target}: "
            f"{err.strerror or err}",
            file=sys.stderr,
        )
        _state[key] = None
        return None
    jax.config.update("jax_compilation_cache_dir", str(target))
    # Cache every compiled program: CPU compiles of the training step take ~1-5 s, but the
    # default threshold (1 s) would skip the smaller evaluation and init programs.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _state[key] = str(target)
    return str(target)


_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_hits = 0
_listening = False


def _count(event: str, **kwargs) -> None:
    global _hits
    if event == _HIT_EVENT:
        _hits += 1


def hits() -> int:
    """Persistent-cache hits in this process since the first call (compare around a compile)."""
    global _listening
    if not _listening:
        import jax

        jax.monitoring.register_event_listener(_count)
        _listening = True
    return _hits


def disable() -> None:
    """Turns the persistent compilation cache off for this process."""
    import jax

    jax.config.update("jax_compilation_cache_dir", None)
    _state.clear()


# Libraries whose code is traced into the programs (their versions go into `fingerprint`).
_TRACED_DISTRIBUTIONS = (
    "jax",
    "jaxlib",
    "numpy",
    "optax",
    "dm-haiku",
    "rlax",
    "distrax",
    "tensorflow-probability",
    "chex",
    "gymnasium",
    "flax",
    "brax",
    "mujoco",
    "mujoco-mjx",
)
# Source packages hashed file by file (an editable install changes without a new version).
# `inject_rl.agents` by that name: an editable install maps it to the repository's agents/
# folder, outside inject_rl/, and the name `agents` resolves to nothing outside the repository
# root (edited agent code then reran the old cached program).
TRACED_PACKAGES = ("inject_rl", "inject_rl.agents")
# jax settings that cannot change a traced program.
_UNTRACED_CONFIG = ("jax_compilation_cache", "jax_persistent_cache", "jax_log", "jax_explain")


def version(dist: str | None) -> str:
    """The installed version of distribution `dist`, `-` when none (or `dist` is None)."""
    if dist is None:
        return "-"
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def source_digest(package: str) -> str:
    """A sha256 of the `.py` files (names and bytes) of importable `package`, or of a plain
    module's file; `-` when it has no Python source."""
    spec = importlib.util.find_spec(package)
    if spec is not None and not spec.submodule_search_locations and spec.origin:
        origin = pathlib.Path(spec.origin)
        if origin.suffix == ".py" and origin.is_file():
            return hashlib.sha256(origin.read_bytes()).hexdigest()
    if spec is None or not spec.submodule_search_locations:
        return "-"
    h = hashlib.sha256()
    for root in spec.submodule_search_locations:
        for path in sorted(pathlib.Path(root).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def fingerprint(*parts: str) -> str:
    """A program-cache key: `parts` (the caller's description of the run: agent, config,
    optimizer...) plus everything else a traced program depends on here: the source of
    `inject_rl` and `inject_rl.agents`, the versions of the traced libraries, jax's settings,
    `XLA_FLAGS` and the devices. Two runs with equal fingerprints trace identical programs."""
    import jax

    h = hashlib.sha256()
    for part in parts:
        h.update(b"\0" + part.encode())
    for dist in _TRACED_DISTRIBUTIONS:
        h.update(f"\0{dist}={version(dist)}".encode())
    for package in TRACED_PACKAGES:
        h.update(f"\0{package}:{source_digest(package)}".encode())
    for name, value in sorted(jax.config.values.items()):
        if not name.startswith(_UNTRACED_CONFIG):
            h.update(f"\0{name}={value!r}".encode())
    devices = jax.local_devices()
    h.update(f"\0{os.environ.get('XLA_FLAGS', '')}\0{devices[0].platform}".encode())
    h.update(f"\0{devices[0].device_kind}\0{len(devices)}\0{sys.version_info[:2]}".encode())
    return h.hexdigest()[:40]


def write_entry(path: pathlib.Path, header: dict, payload: bytes) -> None:
    """Writes a cache entry: `header` as one line of JSON, with the payload's sha256 added, then
    `payload`; atomically (a reader sees the old file or the whole new one).

    Args:
      path: the entry's file; its directory is created.
      header: plain data (`json.dumps` must accept it).
      payload: the entry's bytes.

    Raises:
      OSError: the file could not be written (nothing is left behind).
    """
    line = json.dumps(
        {**header, "sha256": hashlib.sha256(payload).hexdigest()},
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(line + b"\n" + payload)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def read_entry(path: pathlib.Path) -> tuple[dict, bytes]:
    """`(header, payload)` of an entry written by `write_entry`.

    The header is parsed as JSON (plain data only) and nothing else is interpreted here. The
    sha256 detects a torn or corrupted file; it is no signature (whoever can write the directory
    can write a matching hash), so callers check the payload as untrusted bytes.

    Raises:
      OSError: the file cannot be read.
      ValueError: the file is not a whole entry (no header, bad JSON, checksum mismatch).
    """
    line, newline, payload = path.read_bytes().partition(b"\n")
    if not newline:
        raise ValueError("no header line")
    header = json.loads(line)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not isinstance(header, dict):
        raise ValueError(f"header is a {type(header).__name__}, expected an object")
    if header.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise ValueError("checksum mismatch (a torn or corrupted file)")
    return header, payload
