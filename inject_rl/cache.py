"""JAX's persistent compilation cache, on by default for inject-rl's loops and CLI.

Users re-run the same command many times while tuning; with the cache a second run, or one that
changes only injected hyperparameter values or schedule constants (they live in the optimizer
state, not in the compiled program), loads the compiled training step instead of compiling it.

Where: `$INJECT_RL_COMPILE_CACHE` if set, else `$JAX_COMPILATION_CACHE_DIR` if set, else
`$XDG_CACHE_HOME/inject-rl/jax` (default `~/.cache/inject-rl/jax`). Turn it off with
`INJECT_RL_COMPILE_CACHE=off` (or `0`, `false`, `no`) or the CLI's `--no-compile-cache`.
A directory that cannot be written disables the cache with one warning line.
"""

from __future__ import annotations

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
