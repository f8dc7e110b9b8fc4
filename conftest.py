"""Doctest and test session setup: fake CPU devices must be configured before jax is imported."""

import os

# Four host devices let pmap tests run on 2 or 4 fake CPU devices; single-device code uses the
# first one. Must happen before any `import jax` (pytest imports conftest first).
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# A fresh persistent compilation cache per test session (inject_rl.cache): hermetic, and tests
# that build the same program twice still exercise the cache.
if "INJECT_RL_COMPILE_CACHE" not in os.environ:
    import tempfile

    os.environ["INJECT_RL_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="inject-rl-cc-")
