"""Anakin programs as `jax.export` artifacts: a repeated run skips tracing and lowering.

The persistent compilation cache (`inject_rl.cache`) saves XLA's compile, but its key is the
lowered program, so every run still traces and lowers `init` and the training step first: on 2
CPU cores about 0.7 s for PPO, more than its XLA compile once the cache is warm. Here both
programs are exported (`jax.export`: StableHLO plus their signature) and, when the caller names
the run with a `program_key`, stored under `<compile cache>/programs/`; a later run with the same
key deserializes them (milliseconds) and goes straight to the XLA cache.

The programs work on the training state's flat leaves (typed PRNG keys as their key data), under
`shard_map` on a mesh of the run's devices whose axis is `DEVICE_AXIS` (one device or several:
one program path for every device count, issue 16 item 2), so the agents' collectives work
unchanged. A run always executes the exported programs, cached or not, so a cache hit cannot
change a result. An exported program holds its device count (`Exported.nr_devices`, checked on
load) but names no device: it runs on the devices of the caller's mesh. Code that `jax.export`
refuses (a host callback such as `jax.debug.print`, a custom call without a compatibility
guarantee) runs as the same functions under plain `jax.jit`, uncached.

The key must identify everything that shapes the programs (agent, config, optimizer, code and
library versions); `inject_rl.cache.fingerprint` adds the environment's part. A stale or
unreadable entry gives one warning line and is rebuilt.

An entry, `programs/<key>.jaxexport`, is read as untrusted data and never unpickled (issue 12
item 11: a crafted format-1 pickle, `<key>.jaxprog`, ran its code before the "rebuilding"
warning; such files are never opened, and eviction deletes them). It is one line of JSON, then
both programs' `Exported.serialize()` bytes (`inject_rl.cache.write_entry`; the sha256 there
only detects corruption). The JSON holds each flat leaf's shape, dtype and PRNG implementation
and the state's structure: `tuple`/`list`/`dict` nodes and NamedTuples named `module:qualname`,
found only among modules already imported and only if namedtuple made them
(`_namedtuple_class`), so a load traces nothing and an entry can name no code to run. A
structure with other nodes (a custom pytree node, a local class) is stored as null; its load
traces `init` alone (`jax.eval_shape`, never the step) and checks the leaves against it.
"""

from __future__ import annotations

import os
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import export as jax_export
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from inject_rl import cache

_FORMAT = 2
_SUFFIX = ".jaxexport"
_LEGACY = ".jaxprog"  # format 1 (pickled): never opened, deleted by `_evict`
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
    """The compiled programs of a run."""

    init: Callable[[jax.Array], list[jax.Array]]  # device indices [n] -> leaves
    step: Callable[..., tuple[list[jax.Array], dict[str, jax.Array]]]  # (*leaves) -> ...
    layout: Layout
    loaded: bool  # True when read from the program cache (nothing traced)
    sharding: NamedSharding  # every leaf and metric: split along the leading device axis

    def put(self, leaves: list[Any]) -> list[jax.Array]:
        """`leaves` (a state from a checkpoint or an earlier run) on the programs' devices."""
        return jax.device_put(leaves, self.sharding)


def _functions(init, call, mesh: Mesh, layout_box: list):
    """`(flat_init, flat_step)`: init and call on the flat leaves with a leading device axis,
    under `shard_map` on `mesh` (so collectives over its one axis work; on one device cheaper
    to trace, compile and run than a `vmap` over that axis). What `jax.pmap` does too since
    JAX 0.8, minus its per-call argument handling."""
    (axis_name,) = mesh.axis_names

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


def _index(n: int) -> jax.ShapeDtypeStruct:
    """`init`'s argument: the device indices `[n]`."""
    return jax.ShapeDtypeStruct((n,), jnp.int32)


# One flat leaf as the programs take it: (shape with the device axis, dtype, PRNG impl or None).
_Leaf = tuple[tuple[int, ...], str, str | None]


def build(
    init: Callable,
    call: Callable,
    axis_name: str,
    devices: Sequence[jax.Device],
    path: Path | None,
) -> Programs:
    """The programs of `init`/`call` on a mesh of `devices` (axis `axis_name`): from the entry
    at `path` when it holds them, else exported (and saved there when `path` is given). The
    entry is `path` with the suffix `.jaxexport`; a file at `path` itself (the pickled format 1
    was `<key>.jaxprog`) is never opened."""
    mesh = Mesh(list(devices), (axis_name,))
    sharding = NamedSharding(mesh, P(axis_name))
    index = _index(len(devices))
    box: list[Layout] = []
    flat_init, flat_step = _functions(init, call, mesh, box)
    path = None if path is None else path.with_suffix(_SUFFIX)
    if path is not None and path.is_file():
        entry = _read(path, len(devices))
        if entry is not None:
            ex_init, ex_step, leaves, layout = entry
            if layout is None:  # a structure the entry cannot name: trace init (not the step)
                out = jax.eval_shape(flat_init, index)
                if _leaves(out, box[-1]) == leaves:
                    layout = box[-1]
                else:
                    _warn(f"rebuilding program cache entry {path.name}: another state layout")
            if layout is not None:
                return _compile(ex_init.call, ex_step.call, layout, sharding, loaded=True)
    try:
        ex_init = jax_export.export(jax.jit(flat_init))(index)
        avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in ex_init.out_avals]
        ex_step = jax_export.export(jax.jit(flat_step))(*avals)
    except (NotImplementedError, ValueError):
        # Not exportable (a host callback; a custom call without a stability guarantee): the
        # same functions under plain jit. An error of the code itself is raised again here.
        if not box:
            jax.eval_shape(flat_init, index)  # records the layout
        return _compile(flat_init, flat_step, box[-1], sharding, loaded=False)
    if path is not None:
        _save(path, ex_init, ex_step, box[-1])
    return _compile(ex_init.call, ex_step.call, box[-1], sharding, loaded=False)


def _compile(init_fn, step_fn, layout: Layout, sharding: NamedSharding, loaded: bool) -> Programs:
    n = len(layout.key_impls)
    # Every argument and result split along the device axis: an exported program names no
    # device, the caller's shardings place it.
    on_mesh = {"in_shardings": sharding, "out_shardings": sharding}
    step = jax.jit(step_fn, donate_argnums=tuple(range(n)), **on_mesh)
    return Programs(jax.jit(init_fn, **on_mesh), step, layout, loaded, sharding)


def _leaves(avals, layout: Layout) -> tuple[_Leaf, ...]:
    return tuple(
        (tuple(a.shape), str(a.dtype), impl)
        for a, impl in zip(avals, layout.key_impls, strict=True)
    )


def _warn(message: str) -> None:
    print(f"inject-rl: warning: {' '.join(message.split())[:300]}", file=sys.stderr)


def _read(path: Path, num_devices: int):
    """`(ex_init, ex_step, leaves, layout)` of the entry at `path` for `num_devices` devices,
    `layout` None when the structure must be traced; None (after one warning line) when the
    entry is unusable. The file is untrusted: JSON, then bytes handed to
    `jax.export.deserialize` (a flatbuffer), every part checked against the others."""
    try:
        header, payload = cache.read_entry(path)
        if header.get("format") != _FORMAT:
            raise ValueError(f"format {header.get('format')!r}, expected {_FORMAT}")
        leaves = tuple(_leaf(x) for x in header["leaves"])
        split = header["init_bytes"]
        if type(split) is not int or not 0 < split < len(payload):
            raise ValueError(f"init_bytes {split!r} outside the payload")
        ex_init = jax_export.deserialize(bytearray(payload[:split]))
        ex_step = jax_export.deserialize(bytearray(payload[split:]))
        if not ex_init.nr_devices == ex_step.nr_devices == num_devices:
            raise ValueError(f"programs for {ex_step.nr_devices} devices, not {num_devices}")
        flat = [(tuple(s), d) for s, d, _ in leaves]
        index = ((num_devices,), "int32")
        if (
            _avals(ex_init.in_avals) != [index]
            or _avals(ex_init.out_avals) != flat
            or _avals(ex_step.in_avals) != flat
            or _avals(ex_step.out_avals)[: len(flat)] != flat
        ):
            raise ValueError("the programs do not take and return the stored leaves")
        if ex_init.disabled_safety_checks or ex_step.disabled_safety_checks:
            raise ValueError("programs exported with safety checks disabled")  # never ours
        _check_keys(leaves)
        impls = tuple(impl for _, _, impl in leaves)
        layout = None
        if header["tree"] is not None:
            treedef = jax.tree.structure(_example(header["tree"]))
            if treedef.num_leaves != len(leaves):
                raise ValueError(
                    f"{treedef.num_leaves} leaves in the structure, {len(leaves)} stored"
                )
            layout = Layout(treedef, impls)
    except Exception as e:  # noqa: BLE001 - any unusable entry is rebuilt, never fatal
        _warn(f"rebuilding unreadable program cache entry {path.name}: {type(e).__name__}: {e}")
        return None
    try:
        os.utime(path)  # most recently used (another process may have just evicted it)
    except OSError:
        pass
    return ex_init, ex_step, leaves, layout


def _leaf(x) -> _Leaf:
    shape, dtype, impl = x
    if not (
        type(shape) is list
        and all(type(d) is int and d >= 0 for d in shape)
        and type(dtype) is str
        and (impl is None or type(impl) is str)
    ):
        raise ValueError(f"bad leaf {str(x)[:80]}")
    return tuple(shape), dtype, impl


def _avals(avals) -> list[tuple[tuple, str]]:
    return [(tuple(a.shape), str(a.dtype)) for a in avals]


def _check_keys(leaves: tuple[_Leaf, ...]) -> None:
    """Every key leaf names a PRNG implementation of this jax, with its key data's shape."""
    for impl in {impl for _, _, impl in leaves if impl is not None}:
        data = jax.eval_shape(lambda impl=impl: jax.random.key_data(jax.random.key(0, impl=impl)))
        for shape, dtype, key in leaves:
            if key == impl and (
                shape[len(shape) - len(data.shape) :] != data.shape or dtype != str(data.dtype)
            ):
                raise ValueError(f"a {impl} key leaf of shape {shape}, dtype {dtype}")


def _save(path: Path, ex_init, ex_step, layout: Layout) -> None:
    try:
        init_bytes = bytes(ex_init.serialize())  # needs flatbuffers (a dependency)
        header = {
            "format": _FORMAT,
            "init_bytes": len(init_bytes),
            "leaves": [[list(s), d, k] for s, d, k in _leaves(ex_init.out_avals, layout)],
            "tree": _describe(layout.treedef),
        }
        cache.write_entry(path, header, init_bytes + bytes(ex_step.serialize()))
        _evict(path.parent)
    except (OSError, ImportError, ValueError, TypeError) as e:  # e.g. a full disk: run uncached
        _warn(f"program cache entry not saved ({type(e).__name__}: {e})")


def _describe(treedef) -> Any:
    """`treedef` as plain data for `_example`, or None when it has a node `_example` cannot
    rebuild (checked by rebuilding it)."""

    def node(x) -> Any:
        if x is None:
            return None
        kind = type(x)
        if kind is tuple or kind is list:
            return {kind.__name__: [node(c) for c in x]}
        if kind is dict and all(type(k) is str for k in x):
            return {"dict": {k: node(v) for k, v in x.items()}}
        if isinstance(x, tuple) and hasattr(kind, "_fields"):
            fields = {f: node(getattr(x, f)) for f in kind._fields}
            return {"namedtuple": f"{kind.__module__}:{kind.__qualname__}", "fields": fields}
        if type(x) is int and x == 0:
            return "*"
        raise TypeError(f"a {kind.__qualname__} node")

    try:
        tree = node(jax.tree.unflatten(treedef, [0] * treedef.num_leaves))
        if jax.tree.structure(_example(tree)) == treedef:
            return tree
    except Exception:  # noqa: BLE001 - any node it cannot name: the structure is traced on load
        pass
    return None


def _example(tree: Any) -> Any:
    """An instance of the structure `tree` describes, with 0 for every leaf."""
    if tree == "*":
        return 0
    if tree is None:
        return None
    if type(tree) is dict and len(tree) == 1:
        ((kind, body),) = tree.items()
        if kind in ("tuple", "list") and type(body) is list:
            children = [_example(c) for c in body]
            return tuple(children) if kind == "tuple" else children
        if kind == "dict" and type(body) is dict:
            return {k: _example(v) for k, v in body.items()}
    if type(tree) is dict and tree.keys() == {"namedtuple", "fields"}:
        name, fields = tree["namedtuple"], tree["fields"]
        if type(name) is str and type(fields) is dict:
            cls = _namedtuple_class(name, tuple(fields))
            return cls(*(_example(c) for c in fields.values()))
    raise ValueError(f"not a structure node: {str(tree)[:80]}")


def _namedtuple_class(name: str, fields: tuple[str, ...]) -> type:
    """The class `module:qualname`, when its module is already imported and it is a plain
    NamedTuple with `fields`.

    Found by dictionary lookups only (nothing is imported, no attribute hook runs), and accepted
    only when `collections.namedtuple` (or `typing.NamedTuple`) made it and nothing overrides its
    construction: building one runs namedtuple's generated `__new__`, which stores its arguments
    and does nothing else. So an entry can name a class, never code to run.
    """
    module, _, qualname = name.partition(":")
    obj = sys.modules.get(module)
    if type(obj) is not types.ModuleType:
        raise ValueError(f"{name}: module not imported")
    namespace = obj.__dict__
    for part in qualname.split("."):
        obj = namespace.get(part)
        if type(obj) is not type:  # a plain class (no metaclass whose hooks could run)
            raise ValueError(f"{name}: not a class")
        namespace = obj.__dict__
    new = namespace.get("__new__")
    if not (
        obj.__bases__ == (tuple,)
        and type(namespace.get("_fields")) is tuple
        and namespace["_fields"] == fields
        and type(new) is staticmethod
        and getattr(new.__func__, "__globals__", {}).get("__name__") == f"namedtuple_{obj.__name__}"
        and "__init__" not in namespace
    ):
        raise ValueError(f"{name}: not a NamedTuple class with fields {fields}")
    return obj


def _evict(directory: Path) -> None:
    """Keeps the `_KEEP` most recently used entries; drops temporary files of dead writers and
    entries of the pickled format 1. Other processes may evict or write concurrently: a file
    that vanished is skipped."""

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return -1.0

    entries = sorted(directory.glob(f"*{_SUFFIX}"), key=mtime, reverse=True)
    stale = time.time() - 3600
    dead = [t for t in directory.glob("*.tmp") if 0 <= mtime(t) < stale]
    for old in entries[_KEEP:] + dead + list(directory.glob(f"*{_LEGACY}")):
        old.unlink(missing_ok=True)
