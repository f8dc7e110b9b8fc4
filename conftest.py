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


import signal  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """A test that leaves its own SIGINT/SIGTERM handler behind (a run's graceful-stop handler,
    say) would turn a later test's Ctrl-C into a no-op and hang it: restore them after every
    test, and say which test leaked one."""
    before = {s: signal.getsignal(s) for s in _SIGNALS}
    yield
    for s, handler in before.items():
        if signal.getsignal(s) is not handler:
            signal.signal(s, handler)
            name = signal.Signals(s).name
            warnings.warn(f"{name} handler left changed by this test; restored", stacklevel=2)
