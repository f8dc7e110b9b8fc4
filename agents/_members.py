"""Per-member Config values of a population (see `agents._population`): checked once, before
anything runs, and turned into each member's Config.

Split from `agents/_population.py` when that outgrew one file (STYLE.md "Layout and size").
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from inject_rl.agents._contract import Agent


def member_config(cfg: Any, values: Mapping[str, Any]) -> Any:
    out = {}
    for name, v in values.items():
        default = getattr(cfg, name)
        is_int = isinstance(default, numbers.Integral) and not isinstance(default, bool)
        out[name] = int(v) if is_int else float(v)
    return dataclasses.replace(cfg, **out)


def member_values(
    agent: Agent, cfg: Any, size: int | None, values: Mapping[str, Sequence[Any]] | None
) -> dict[str, np.ndarray]:
    """Checked per-member Config values, `seed` always among them (default: `cfg.seed + i`).

    Raises:
      ValueError: an unknown or non-numeric field, lengths that differ from each other or from
        `size`, or a member whose Config fails `validate()` (naming the member and the value).
    """
    values = dict(values or {})
    fields = {f.name for f in dataclasses.fields(cfg)}
    lengths = {name: len(v) for name, v in values.items()}
    if size is None:
        if not lengths:
            raise ValueError("a population needs a size or per-member values")
        size = next(iter(lengths.values()))
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"population size must be an integer >= 1, got {size!r}")
    for name, n in lengths.items():
        if name not in fields:
            raise ValueError(
                f"{agent.name} has no Config field {name!r} to vary over members; "
                f"fields: {', '.join(sorted(fields))}"
            )
        if n != size:
            raise ValueError(f"{name}: {n} values given for a population of {size} members")
    values.setdefault("seed", [cfg.seed + i for i in range(size)])
    out = {}
    for name, vs in values.items():
        default = getattr(cfg, name)
        is_int = isinstance(default, numbers.Integral) and not isinstance(default, bool)
        if not isinstance(default, numbers.Real) or isinstance(default, bool):
            raise ValueError(
                f"{name} (now {default!r}) is not a number: only numeric Config fields can "
                "differ between members (a schedule's constants: build it from numeric fields)"
            )
        if is_int and name != "seed":
            raise ValueError(
                f"{name} cannot differ between members: integer Config fields are sizes and "
                "counts that shape the compiled program; vary it in separate runs"
            )
        for i, v in enumerate(vs):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"{name}: member {i}'s value must be a number, got {v!r}")
            if is_int and v != int(v):
                raise ValueError(f"{name}: member {i}'s value must be an integer, got {v!r}")
        out[name] = np.asarray(vs, np.int32 if is_int else np.float32)
    for i in range(size):
        member = {k: v[i] for k, v in out.items()}
        try:
            member_config(cfg, member).validate()
        except ValueError as e:
            raise ValueError(f"member {i} ({_show(member)}): {e}") from None
    return out


def _show(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items())
