"""Checkpoints of a whole training state with orbax-checkpoint, restored bitwise.

A training state (params, optimizer state with every schedule state and hyperparameter, replay
buffer, env states, RNG keys, counters...) is saved as its flat list of leaves next to a JSON
record of their key paths, so it is restored into the structure of a freshly built state: orbax
alone would give back dicts in place of the NamedTuples. Typed PRNG keys (`jax.random.key`) are
stored as their `key_data` and rewrapped with their implementation on restore. orbax's
`CheckpointManager` writes each step to a temporary directory and renames it when complete, so
a process killed mid-save leaves the previous checkpoint intact.

A checkpoint damaged after it was written (a truncated or overwritten file, one flipped bit, a
deleted item) is detected on restore: its meta holds a sha256 of the saved arrays and one of
itself (issue 12). `restore_newest` then falls back to the newest intact checkpoint.

In a multi-process run a single process (the caller's choice, e.g. process 0) saves alone: orbax
is told that it is the only active process, and a replicated array that spans processes is saved
as this process's own replicas.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from inject_rl.loops import local_replicas

_STATE, _META = "state", "meta"
# Meta keys of the integrity record (checkpoints written before it have neither: unverified).
_ARRAYS_SHA, _META_SHA = "arrays_sha256", "meta_sha256"


class CorruptCheckpoint(ValueError):
    """A checkpoint that cannot be read back as it was saved (damaged files, wrong checksum)."""


def arrays_digest(arrays: list[np.ndarray]) -> str:
    """sha256 of arrays' dtypes, shapes and bytes, in order.

    >>> arrays_digest([np.zeros(2, np.float32)]) == arrays_digest([np.zeros(2, np.float32)])
    True
    >>> arrays_digest([np.zeros(2, np.float32)]) == arrays_digest([np.zeros(2, np.float64)])
    False
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{list(a.shape)};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _meta_digest(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != _META_SHA}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _quiet_failures():
    """Silences the reports of orbax's sibling reads when one read of a damaged checkpoint
    fails: asyncio's "exception was never retrieved", and the tracebacks tensorstore's
    callbacks print straight to `sys.stderr` when they post a finished read to the event loop
    orbax has closed (60 "Event loop is closed" tracebacks for one flipped bit). The error
    raised is the one to report."""
    log = logging.getLogger("asyncio")
    disabled, log.disabled = log.disabled, True
    stderr, sys.stderr = sys.stderr, io.StringIO()
    try:
        yield
    except BaseException:
        gc.collect()  # the abandoned futures report when collected: now, while silenced
        # Reads still in flight report as they finish: wait until they have gone quiet (a
        # damaged checkpoint only; at most about a second).
        for _ in range(20):
            before = sys.stderr.tell()
            time.sleep(0.05)
            if sys.stderr.tell() == before:
                break
        raise
    finally:
        sys.stderr = stderr
        log.disabled = disabled


def _reason(e: BaseException) -> str:
    """The first line of an error, shortened: tensorstore's messages run to 1.5 kB."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def host_copy(tree: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    """`tree`'s leaves as host numpy arrays (typed keys as key data) and their description.

    Copies synchronously, so the caller may pass a state that is about to be donated.
    """
    path_leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    arrays, keys = [], {}
    for i, (_, leaf) in enumerate(path_leaves):
        if _is_key(leaf):
            keys[str(i)] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        # A copy, never a view of a device buffer.
        arrays.append(np.array(local_replicas(leaf)))
    paths = [jax.tree_util.keystr(p) for p, _ in path_leaves]
    return arrays, {"paths": paths, "keys": keys}


def preload() -> None:
    """Imports orbax-checkpoint (about 0.13 s), e.g. on a thread while a run compiles."""
    import orbax.checkpoint  # noqa: F401


def _alone():
    """orbax options for a process that saves and restores by itself (no cross-process sync)."""
    import orbax.checkpoint as ocp

    me = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})


def _manager(directory: Path, create: bool):
    import orbax.checkpoint as ocp

    if create:  # orbax's own `create` is not allowed with `active_processes`
        directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=2,
        create=False,
        enable_async_checkpointing=False,
        multiprocessing_options=_alone(),
    )
    return ocp.CheckpointManager(directory.absolute(), options=options)


class Checkpointer:
    """Saves and restores training states under `directory` (orbax steps = host call index)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._mgr = None

    def _get(self, create: bool):
        if self._mgr is None:
            self._mgr = _manager(self.directory, create)
        return self._mgr

    def latest_step(self) -> int | None:
        """The last complete checkpoint's step, or None (creates nothing)."""
        if not self.directory.is_dir():
            return None
        return self._get(create=False).latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Saves `state` (any pytree of arrays) and the JSON-able `meta` as `step`, atomically."""
        import orbax.checkpoint as ocp

        arrays, layout = host_copy(state)
        items = {f"{i:05d}": a for i, a in enumerate(arrays)}
        meta = json.loads(
            json.dumps({**meta, "layout": layout, _ARRAYS_SHA: arrays_digest(arrays)})
        )
        meta[_META_SHA] = _meta_digest(meta)
        self._get(create=True).save(
            step,
            args=ocp.args.Composite(
                **{_STATE: ocp.args.StandardSave(items), _META: ocp.args.JsonSave(meta)}
            ),
            force=True,
        )

    def all_steps(self) -> list[int]:
        """Every checkpoint's step, oldest first (creates nothing)."""
        if not self.directory.is_dir():
            return []
        return sorted(self._get(create=False).all_steps())

    def restore_meta(self, step: int) -> dict[str, Any]:
        """The meta saved with `step` (with its "layout"), checked against its own checksum.

        Raises:
          CorruptCheckpoint: unreadable, or not what was saved.
        """
        import orbax.checkpoint as ocp

        try:
            out = self._get(create=False).restore(
                step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()})
            )
            meta = dict(out[_META])
            paths = meta["layout"]["paths"]
        except Exception as e:  # orbax, tensorstore, JSON: any failure to read the item
            raise CorruptCheckpoint(
                f"checkpoint {self.directory}/{step}: unreadable meta ({_reason(e)})"
            ) from None
        if _META_SHA in meta and meta[_META_SHA] != _meta_digest(meta):
            raise CorruptCheckpoint(f"checkpoint {self.directory}/{step}: meta checksum mismatch")
        if not isinstance(paths, list):
            raise CorruptCheckpoint(f"checkpoint {self.directory}/{step}: malformed meta")
        return meta

    def _arrays(self, step: int, meta: dict[str, Any]) -> list[np.ndarray]:
        """The saved arrays of `step` in leaf order, checked against the meta's checksum."""
        import orbax.checkpoint as ocp

        n = len(meta["layout"]["paths"])
        try:
            with _quiet_failures():
                out = self._get(create=False).restore(
                    step, args=ocp.args.Composite(**{_STATE: ocp.args.StandardRestore()})
                )
            arrays = [np.asarray(out[_STATE][f"{i:05d}"]) for i in range(n)]
        except Exception as e:
            raise CorruptCheckpoint(
                f"checkpoint {self.directory}/{step}: unreadable arrays ({_reason(e)})"
            ) from None
        if _ARRAYS_SHA in meta and arrays_digest(arrays) != meta[_ARRAYS_SHA]:
            raise CorruptCheckpoint(f"checkpoint {self.directory}/{step}: arrays checksum mismatch")
        return arrays

    def restore_leaves(self, step: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The saved leaves by key path (typed keys as key data) and the meta, no structure
        needed: for inspection and bitwise comparisons.

        Raises:
          CorruptCheckpoint: the checkpoint is damaged.
        """
        meta = self.restore_meta(step)
        arrays = self._arrays(step, meta)
        paths = meta.pop("layout")["paths"]
        _pop_digests(meta)
        return dict(zip(paths, arrays, strict=True)), meta

    def restore(self, step: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """The state saved as `step`, in the structure of `like`, and its meta.

        Args:
          step: a saved step (e.g. `latest_step()`).
          like: a pytree of the expected structure whose leaves have `shape` and `dtype`
            (e.g. `jax.eval_shape` of the init function); a typed-key leaf gets a key back.

        Raises:
          CorruptCheckpoint: the checkpoint is damaged (unreadable, or a checksum mismatch).
          ValueError: the checkpoint's leaves do not match `like` (names the first mismatch).
        """
        meta = self.restore_meta(step)
        layout = meta.pop("layout")
        like_leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
        paths = [jax.tree_util.keystr(p) for p, _ in like_leaves]
        if paths != layout["paths"]:
            diff = next(
                (a, b)
                for a, b in zip(paths + [None], layout["paths"] + [None], strict=False)
                if a != b
            )
            raise ValueError(
                f"checkpoint {self.directory}/{step} holds a different state structure "
                f"(first difference: expected {diff[0]}, found {diff[1]})"
            )
        arrays = self._arrays(step, {**meta, "layout": layout})
        _pop_digests(meta)
        leaves = []
        for i, (path, want, arr) in enumerate(
            zip(paths, (leaf for _, leaf in like_leaves), arrays, strict=True)
        ):
            if str(i) in layout["keys"]:
                if not _is_key(want):
                    raise ValueError(f"checkpoint leaf {path} is a PRNG key, expected an array")
                leaf = jax.random.wrap_key_data(arr, impl=layout["keys"][str(i)])
            else:
                leaf = arr
            if tuple(leaf.shape) != tuple(want.shape) or (
                not _is_key(want) and leaf.dtype != want.dtype
            ):
                raise ValueError(
                    f"checkpoint leaf {path} is {leaf.dtype}{list(leaf.shape)}, this run expects "
                    f"{want.dtype}{list(want.shape)} (different config or number of devices?)"
                )
            leaves.append(leaf)
        return jax.tree_util.tree_unflatten(treedef, leaves), meta

    def restore_newest(self, like: Any) -> tuple[int, Any, dict[str, Any], list[str]]:
        """The newest intact checkpoint: its step, state (as `restore`) and meta, and one reason
        for each newer checkpoint skipped as damaged (for a warning).

        Raises:
          ValueError: no checkpoint, none intact, or a state structure unlike `like` (a
            different run: older checkpoints would not match either).
        """
        skipped = []
        for step in reversed(self.all_steps()):
            try:
                state, meta = self.restore(step, like)
            except CorruptCheckpoint as e:
                skipped.append(str(e))
                continue
            return step, state, meta, skipped
        if not skipped:
            raise ValueError(f"no checkpoint in {self.directory}")
        raise ValueError(f"no intact checkpoint in {self.directory}: {'; '.join(skipped)}")

    def discard_after(self, step: int) -> list[int]:
        """Deletes the checkpoints newer than `step` (damaged ones a resumed run will write
        again); returns their steps."""
        newer = [s for s in self.all_steps() if s > step]
        for s in newer:
            shutil.rmtree(self.directory / str(s))
        if newer and self._mgr is not None:
            self._mgr.reload()
        return newer

    def close(self) -> None:
        if self._mgr is not None:
            self._mgr.close()
            self._mgr = None


def _pop_digests(meta: dict[str, Any]) -> None:
    meta.pop(_ARRAYS_SHA, None)
    meta.pop(_META_SHA, None)


def save_params(directory: str | os.PathLike, params: Any) -> None:
    """Saves a params pytree of nested dicts (e.g. Haiku's) atomically to `directory`."""
    import orbax.checkpoint as ocp

    params = jax.tree.map(lambda x: np.array(local_replicas(x)), params)
    with ocp.StandardCheckpointer(multiprocessing_options=_alone()) as ckptr:
        ckptr.save(Path(directory).absolute(), params, force=True)


def load_params(directory: str | os.PathLike) -> Any:
    """The params saved by `save_params`, as nested dicts of numpy arrays.

    Raises:
      ValueError: nothing saved there.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"no final params in {directory} (did training finish?)")
    with ocp.StandardCheckpointer(multiprocessing_options=_alone()) as ckptr:
        return ckptr.restore(directory.absolute())
