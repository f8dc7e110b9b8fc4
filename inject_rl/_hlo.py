"""Kernels of one scan step in compiled HLO text: the counting rule that tests/optim/test_kernels.py
holds the schedules to and `scripts/bench_overhead.py` prints (issue 16 item 3).

XLA compiles a `lax.scan` into one `while` loop, whose body is exactly one step. Every
instruction of that body is one kernel (a thunk on CPU, a launch on GPU), except the plumbing that
launches nothing: `parameter`, `get-tuple-element`, `tuple`, `constant` and `bitcast`. So a fusion
counts once, however many ops it fused, and so does each `copy` XLA inserts when a loop-carried
value is still read after its new value would overwrite it in place.
"""

from __future__ import annotations

import collections
import re

# Instructions that launch no kernel: buffers passed through, aliased or known at compile time.
PLUMBING = frozenset({"parameter", "get-tuple-element", "tuple", "constant", "bitcast"})
# `%name = shape opcode(`; a tuple shape may hold spaces and /*index=N*/ comments, never `word(`.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%[\w.\-]+ = .+? ([a-z][a-z0-9\-]*)\(", re.M)
_WHILE_BODY = re.compile(r"\bwhile\(.*?\bbody=%?([\w.\-]+)")


def computations(hlo: str) -> dict[str, str]:
    """Each computation of an HLO module's text, by name (its header line starts a block)."""
    blocks = re.split(r"\n(?=\S)", hlo)
    named = (re.match(r"(?:ENTRY\s+)?%?([\w.\-]+) ", block) for block in blocks)
    return {m.group(1): block for m, block in zip(named, blocks, strict=True) if m}


def kernels_per_step(hlo: str) -> collections.Counter:
    """Kernels in the body of the compiled module's only `while` loop (one scan step), by opcode.

    Raises ValueError when the module has no `while` loop or several (a backend that unrolled the
    scan, or a program with more than one loop).
    """
    named = computations(hlo)
    bodies = [name for text in named.values() for name in _WHILE_BODY.findall(text)]
    if len(bodies) != 1:
        raise ValueError(f"expected one while loop (the scan), got bodies {bodies}")
    ops = _INSTRUCTION.findall(named[bodies[0]])
    return collections.Counter(op for op in ops if op not in PLUMBING)
