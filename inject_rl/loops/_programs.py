"""One-device anakin programs as `jax.export` artifacts: a repeated run skips tracing and lowering.

The persistent compilation cache (`inject_rl.cache`) saves XLA's compile, but its key is the
lowered program, so every run still traces and lowers `init` and the training step first: on 2
CPU cores about 0.7 s for PPO, more than its XLA compile once the cache is warm. Here both
programs are exported (`jax.export`: StableHLO plus their signature) and, when the caller names
the run with a `program_key`, stored under `<compile cache>/programs/`; a later run with the same
key deserializes them (milliseconds) and goes straight to the XLA cache.

The programs work on the training state's flat leaves (typed PRNG keys as their key data), under
`shard_map` on a one-device mesh whose axis is `DEVICE_AXIS`, so the agents' collectives work
unchanged. A one-device run always executes the exported programs, cached or not, so a cache hit
cannot change a result. Code that `jax.export` refuses (a host callback such as
`jax.debug.print`, a custom call without a compatibility guarantee) runs as the same functions
under plain `jax.jit`, uncached.

The key must identify everything that shapes the programs (agent, config, optimizer, code and
library versions); `inject_rl.cache.fingerprint` adds the environment's part. A stale or
unreadable entry gives one warning line and is rebuilt.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import export as jax_export
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

_FORMAT = 1
_KEEP = 64  # entries kept in the program cache (least recently used removed)


class Layout(NamedTuple):
    """How a training state maps to the flat leaves the programs take and return."""

    treedef: Any
    key_impls: tuple[str | None, ...]  # per leaf: the PRNG implementation of a key leaf, or None

    def leaves(self, state: Any) -> list[jax.Array]:
        return [
            jax.random.key_data(x) if impl is not None else x
            for x, impl in zip(jax.tree.leaves(state), self.key_impls, strict=True)
        ]

    def state(self, leaves: list[jax.Array]) -> Any:
        return jax.tree.unflatten(
            self.treedef,
            [
                jax.random.wrap_key_data(x, impl=impl) if impl is not None else x
                for x, impl in zip(leaves, self.key_impls, strict=True)
            ],
        )


def _layout_of(state: Any) -> Layout:
    leaves, treedef = jax.tree.flatten(state)
    impls = tuple(
        str(jax.random.key_impl(x))
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)
        else None
        for x in leaves
    )
    return Layout(treedef, impls)


class Programs(NamedTuple):
    """The compiled one-device programs of a run."""

    init: Callable[[jax.Array], list[jax.Array]]  # device index [1] -> leaves
    step: Callable[..., tuple[list[jax.Array], dict[str, jax.Array]]]  # (*leaves) -> ...
    layout: Layout
    loaded: bool  # True when read from the program cache (nothing traced)


def _functions(init, call, axis_name: str, device: jax.Device, layout_box: list):
    """`(flat_init, flat_step)`: init and call on the flat leaves with a leading device axis of
    size 1, under `shard_map` on a one-device mesh (so `axis_name` collectives work; cheaper to
    trace, compile and run than a `vmap` over that axis)."""
    mesh = Mesh([device], (axis_name,))

    def on_device(fn):
        # check_vma=False: gymnasium's phys2d envs mix device-varying and constant cond branches.
        return jax.shard_map(
            fn, mesh=mesh, in_specs=P(axis_name), out_specs=P(axis_name), check_vma=False
        )

    def add_axis(tree):
        return jax.tree.map(lambda x: x[None], tree)

    @on_device
    def flat_init(index):
        state = init(index[0])
        layout_box.append(_layout_of(state))
        return add_axis(layout_box[-1].leaves(state))

    @on_device
    def flat_step(*leaves):
        state = layout_box[-1].state([x[0] for x in leaves])
        state, metrics = call(state)
        return add_axis((layout_box[-1].leaves(state), metrics))

    return flat_init, flat_step


_INDEX = jax.ShapeDtypeStruct((1,), jnp.int32)


def build(
    init: Callable, call: Callable, axis_name: str, device: jax.Device, path: Path | None
) -> Programs:
    """The programs of `init`/`call`: from `path` when it holds them, else exported (and saved
    to `path` when given)."""
    if path is not None:
        loaded = _load(path)
        if loaded is not None:
            ex_init, ex_step, layout = loaded
            return _compile(ex_init.call, ex_step.call, layout, loaded=True)
    box: list[Layout] = []
    flat_init, flat_step = _functions(init, call, axis_name, device, box)
    try:
        ex_init = jax_export.export(jax.jit(flat_init))(_INDEX)
        avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in ex_init.out_avals]
        ex_step = jax_export.export(jax.jit(flat_step))(*avals)
    except (NotImplementedError, ValueError):
        # Not exportable (a host callback; a custom call without a stability guarantee): the
        # same functions under plain jit. An error of the code itself is raised again here.
        if not box:
            jax.eval_shape(flat_init, _INDEX)  # records the layout
        return _compile(flat_init, flat_step, box[-1], loaded=False)
    if path is not None:
        _save(path, ex_init, ex_step, box[-1])
    return _compile(ex_init.call, ex_step.call, box[-1], loaded=False)


def _compile(init_fn, step_fn, layout: Layout, loaded: bool) -> Programs:
    n = len(layout.key_impls)
    step = jax.jit(step_fn, donate_argnums=tuple(range(n)))
    return Programs(jax.jit(init_fn), step, layout, loaded)


def _load(path: Path):
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f)
        if entry.get("format") != _FORMAT:
            raise ValueError(f"format {entry.get('format')!r}, expected {_FORMAT}")
        ex_init = jax_export.deserialize(bytearray(entry["init"]))
        ex_step = jax_export.deserialize(bytearray(entry["step"]))
        layout = Layout(entry["treedef"], tuple(entry["key_impls"]))
    except Exception as e:  # noqa: BLE001 - any unreadable entry is rebuilt, never fatal
        print(
            f"inject-rl: warning: rebuilding unreadable program cache entry {path.name}: "
            f"{type(e).__name__}: {' '.join(str(e).split())[:200]}",
            file=sys.stderr,
        )
        return None
    try:
        os.utime(path)  # most recently used (another process may have just evicted it)
    except OSError:
        pass
    return ex_init, ex_step, layout


def _save(path: Path, ex_init, ex_step, layout: Layout) -> None:
    tmp = None
    try:
        entry = {
            "format": _FORMAT,
            "init": bytes(ex_init.serialize()),  # needs flatbuffers (a dependency)
            "step": bytes(ex_step.serialize()),
            "treedef": layout.treedef,
            "key_impls": list(layout.key_impls),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # readers see the old entry or the whole new one
        _evict(path.parent)
    except (OSError, ImportError, pickle.PicklingError, TypeError, AttributeError) as e:
        # An unpicklable state structure (e.g. a local class) or a full disk: run uncached.
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        print(
            f"inject-rl: warning: program cache entry not saved ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]})",
            file=sys.stderr,
        )


def _evict(directory: Path) -> None:
    """Keeps the `_KEEP` most recently used entries; drops temporary files of dead writers.
    Other processes may evict or write concurrently: a file that vanished is skipped."""

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return -1.0

    entries = sorted(directory.glob("*.jaxprog"), key=mtime, reverse=True)
    stale = time.time() - 3600
    for old in entries[_KEEP:] + [t for t in directory.glob("*.tmp") if 0 <= mtime(t) < stale]:
        old.unlink(missing_ok=True)
