"""Limits on schedule spec strings (issue 12 item 14): nesting depth and quoted length.

Each nested schedule adds to the compiled program (60 nested `warmup`s compiled for a minute),
so calls nest at most `MAX_DEPTH` levels deep. Error messages quote at most `SHOWN` characters
of a spec, then its length, rather than echoing a 100 kB spec in a 100 kB line.
"""

from __future__ import annotations

import ast

# Most schedule calls nested in one spec (`spike_guard(warmup(clip(kl_target(...))))` is 4).
MAX_DEPTH = 8
# Most expressions nested in one spec (calls, signs, lists); a legitimate spec needs about
# MAX_DEPTH + 3. Bounds the recursion of the walk below.
MAX_EXPR_DEPTH = 32
# Characters of a spec (or of a part of it) quoted in an error message.
SHOWN = 80


def quote(text: str) -> str:
    """`repr(text)`, cut to `SHOWN` characters plus its length when longer."""
    if len(text) <= SHOWN:
        return repr(text)
    return f"{text[:SHOWN] + '...'!r} ({len(text)} chars)"


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters plus its length when longer."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def check_depth(tree: ast.AST, spec: str) -> None:
    """Rejects a spec whose schedule calls (or expressions) nest too deeply; iterative."""
    calls = exprs = 0
    stack = [(tree, 0, 0)]
    while stack:
        node, call_depth, expr_depth = stack.pop()
        if isinstance(node, ast.expr):
            expr_depth += 1
            call_depth += isinstance(node, ast.Call)
        calls, exprs = max(calls, call_depth), max(exprs, expr_depth)
        stack.extend((child, call_depth, expr_depth) for child in ast.iter_child_nodes(node))
    if calls > MAX_DEPTH:
        raise ValueError(
            f"spec nests {calls} levels deep; at most {MAX_DEPTH} allowed (spec {quote(spec)})"
        )
    if exprs > MAX_EXPR_DEPTH:
        raise ValueError(
            f"spec nests {exprs} expressions deep; at most {MAX_EXPR_DEPTH} allowed "
            f"(spec {quote(spec)})"
        )


def parse_expr(text: str, spec: str, what: str) -> ast.Expression:
    """`ast.parse(text, mode="eval")` with its depth checked; errors start with `what`."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"{what}: {e.msg}") from None
    except (MemoryError, RecursionError):  # e.g. 100k nested signs overflow the parser
        raise ValueError(f"{what}: nested too deeply") from None
    check_depth(tree, spec)
    return tree
