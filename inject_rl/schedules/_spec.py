"""Schedule spec strings: `"kl_target(3e-4, target=0.01)"` → a schedule, without `eval`.

A spec is parsed with `ast.parse(mode="eval")` and a whitelist walk: a number (a constant
hyperparameter), or a call of a known schedule whose arguments are numbers (negative and `inf`
included), strings, `True`/`False`, lists/tuples of numbers and — only where a parameter takes a
schedule (`warmup`, `clip`, `spike_guard`, `from_step_schedule`) — nested calls. Anything else
(names, attributes, lambdas, subscripts, `**kwargs`...) is rejected, so a spec can come from a
command line or a config file. A schedule's `repr` is its call form, so `parse(repr(s))` rebuilds
it (`to_spec`).

Limits (`_spec_limits`, issue 12 item 14): schedule calls nest at most 8 levels deep, and an
error message quotes at most 80 characters of a spec, then its length.
"""

from __future__ import annotations

import ast
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import optax

from inject_rl.schedules._bandit import bandit
from inject_rl.schedules._combinators import clip, warmup
from inject_rl.schedules._constant import constant, from_step_schedule
from inject_rl.schedules._hypergradient import hypergradient
from inject_rl.schedules._kl_target import kl_target
from inject_rl.schedules._plateau import plateau
from inject_rl.schedules._progress import progress
from inject_rl.schedules._spec_limits import cut, parse_expr, quote
from inject_rl.schedules._spike_guard import spike_guard

# name -> factory of every stateful schedule a spec may call.
SCHEDULES: dict[str, Callable[..., Any]] = {
    "bandit": bandit,
    "clip": clip,
    "constant": constant,
    "from_step_schedule": from_step_schedule,
    "hypergradient": hypergradient,
    "kl_target": kl_target,
    "plateau": plateau,
    "progress": progress,
    "spike_guard": spike_guard,
    "warmup": warmup,
}

# optax step schedules (functions of the update count) a spec may call; they are wrapped in
# `from_step_schedule`, whose repr names them, e.g. `from_step_schedule('linear_schedule(...)')`.
STEP_SCHEDULES: dict[str, Callable[..., Any]] = {
    name: getattr(optax, name)
    for name in (
        "constant_schedule",
        "cosine_decay_schedule",
        "exponential_decay",
        "linear_schedule",
        "polynomial_schedule",
        "warmup_cosine_decay_schedule",
        "warmup_exponential_decay_schedule",
    )
}

# The parameter of each combinator that takes a schedule (a nested call is allowed only there).
_SCHEDULE_PARAMS = {"warmup": "schedule", "clip": "schedule", "spike_guard": "schedule"}


def signature(name: str) -> str:
    """`name(param, param=default, ...)` for a schedule or optax step schedule name.

    >>> signature("warmup")
    'warmup(schedule, steps, init_value=0.0)'
    """
    factory = SCHEDULES.get(name) or STEP_SCHEDULES[name]
    parts = []
    for p in inspect.signature(factory).parameters.values():
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"{name}({', '.join(parts)})"


def parse(spec: str) -> float | optax.schedules.StatefulSchedule:
    """Parses a hyperparameter spec: a number, or a call of a schedule (see `SCHEDULES`).

    Args:
      spec: e.g. `"3e-4"`, `"kl_target(3e-4, target=0.01)"`,
        `"warmup(plateau(0.9, factor=1.05, max_value=0.99), steps=100)"`,
        `"from_step_schedule(linear_schedule(1.0, 0.05, 1000))"`.

    Returns:
      A float for a number, otherwise the schedule (an `optax.schedules.StatefulSchedule`).

    Raises:
      ValueError: one line naming the problem: malformed text, a construct that is not allowed,
        schedule calls nested more than 8 levels deep,
        an unknown schedule or parameter (listing the allowed ones), or an out-of-range value
        (the schedule's own message).

    >>> parse("kl_target(3e-4, target=0.01)")
    kl_target(0.0003, target=0.01, signal='kl', tolerance=2.0, factor=1.5, min_value=3e-07,
              max_value=0.003, every=1)
    >>> parse("-1e-3")
    -0.001
    """
    if not isinstance(spec, str):
        raise ValueError(f"a hyperparameter spec must be a string, got {cut(repr(spec), 80)}")
    tree = parse_expr(spec.strip(), spec, f"malformed spec {quote(spec)}")
    node = tree.body
    if isinstance(node, ast.Call):
        return _call(node, spec)
    value = _literal(node, spec)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"spec {quote(spec)} must be a number or a schedule call; "
            f"schedules: {', '.join(SCHEDULES)}"
        )
    return float(value)


def to_spec(value: Any) -> str:
    """The spec string of a number or schedule, such that `parse(to_spec(x))` rebuilds `x`.

    Raises:
      ValueError: `value` is neither a number nor a schedule whose repr parses back (e.g. a
        user's own schedule class, or `from_step_schedule` of an arbitrary function).

    >>> to_spec(plateau(0.9, factor=1.05, max_value=0.99))
    "plateau(0.9, signal='episode_return', mode='max', factor=1.05, patience=10, cooldown=0,
             threshold=0.0001, min_value=0.0009, max_value=0.99, every=1)"
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return repr(float(value))
    text = repr(value)
    try:
        again = parse(text)
    except ValueError as e:
        name = type(value).__name__
        raise ValueError(f"{name} cannot be written as a spec string ({e})") from None
    if repr(again) != text:
        raise ValueError(f"{text} does not round-trip through a spec string")
    return text


def _allowed(spec: str, what: str) -> ValueError:
    return ValueError(
        f"{what} is not allowed in spec {quote(spec)}; a spec is a number or a call of "
        f"{', '.join(SCHEDULES)} with literal arguments"
    )


def _literal(node: ast.expr, spec: str) -> Any:
    """A number, string, bool, `inf` or list/tuple of numbers; anything else is rejected."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            try:
                float(node.value)
            except OverflowError:
                raise ValueError(
                    f"the number {cut(ast.unparse(node), 40)} in spec {quote(spec)} is too "
                    "large for a float"
                ) from None
        return node.value
    if isinstance(node, ast.Name) and node.id == "inf":
        return math.inf
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand, spec)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _allowed(spec, f"a sign before {quote(ast.unparse(node.operand))}")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List | ast.Tuple):
        values = [_literal(e, spec) for e in node.elts]
        if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in values):
            raise _allowed(
                spec, f"the list {quote(ast.unparse(node))} (only numbers may be listed)"
            )
        return values
    if isinstance(node, ast.Name):
        raise _allowed(spec, f"the name {quote(node.id)} (inf is the only name)")
    if isinstance(node, ast.Call):
        raise _allowed(
            spec,
            f"the call {quote(ast.unparse(node))} here (nested schedules only as "
            "the schedule of warmup, clip, spike_guard or from_step_schedule)",
        )
    raise _allowed(spec, f"{type(node).__name__} {quote(ast.unparse(node))}")


def _call(node: ast.Call, spec: str) -> Any:
    """Builds the schedule `node` calls (an optax step schedule comes wrapped as a stateful one)."""
    if not isinstance(node.func, ast.Name):
        raise _allowed(spec, f"calling {quote(ast.unparse(node.func))}")
    name = node.func.id
    if name in SCHEDULES:
        factory = SCHEDULES[name]
    elif name in STEP_SCHEDULES:
        factory = STEP_SCHEDULES[name]
    else:
        raise ValueError(
            f"unknown schedule {quote(name)} in spec {quote(spec)}; "
            f"schedules: {', '.join(SCHEDULES)}; "
            f"optax step schedules: {', '.join(STEP_SCHEDULES)}"
        )
    params = inspect.signature(factory).parameters
    seen = set()
    for kw in node.keywords:
        if kw.arg is None:
            raise _allowed(spec, "'**' unpacking")
        if kw.arg in seen:
            # `ast.parse` accepts a repeated keyword (the compiler rejects it); the last would win.
            raise ValueError(f"{name} got {quote(kw.arg)} twice in spec {quote(spec)}")
        seen.add(kw.arg)
        if kw.arg not in params:
            raise ValueError(
                f"{name} has no parameter {quote(kw.arg)} (spec {quote(spec)}); {signature(name)}"
            )
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise _allowed(spec, "'*' unpacking")
    names = list(params)
    nested = _SCHEDULE_PARAMS.get(name)

    def arg(param: str, value: ast.expr) -> Any:
        if param == nested and isinstance(value, ast.Call):
            return _call(value, spec)
        if name == "from_step_schedule" and param == "fn":
            return _step_fn(value, spec)
        return _literal(value, spec)

    args = [arg(names[i] if i < len(names) else "", a) for i, a in enumerate(node.args)]
    kwargs = {kw.arg: arg(kw.arg, kw.value) for kw in node.keywords}
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as e:
        raise ValueError(f"{e} in spec {quote(spec)}; {signature(name)}") from None
    try:
        built = factory(*args, **kwargs)
    except (TypeError, ValueError, OverflowError) as e:
        # The schedule's own message may quote a long argument (a bandit's values): cut it too.
        raise ValueError(f"{cut(str(e), 320)} (spec {quote(spec)})") from None
    if name in STEP_SCHEDULES:
        return _named_step(built, name, args, kwargs)
    return built


def _step_fn(value: ast.expr, spec: str) -> Callable[..., Any]:
    """`from_step_schedule`'s argument: an optax step schedule call, or its repr as a string."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        what = f"malformed step schedule in spec {quote(spec)}"
        value = parse_expr(value.value.strip(), spec, what).body
    if not (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in STEP_SCHEDULES
    ):
        raise ValueError(
            f"from_step_schedule takes an optax step schedule call in spec {quote(spec)}; "
            f"allowed: {', '.join(STEP_SCHEDULES)}"
        )
    return _call(value, spec).fn


def _named_step(fn: Callable[..., Any], name: str, args, kwargs) -> Any:
    """Wraps an optax step schedule so that its name is its call form (for `repr` round trips)."""
    params = list(inspect.signature(STEP_SCHEDULES[name]).parameters)
    bound = dict(zip(params, args, strict=False)) | kwargs
    text = f"{name}({', '.join(f'{k}={v!r}' for k, v in bound.items())})"

    def step(count):
        return fn(count)

    step.__name__ = step.__qualname__ = text
    return from_step_schedule(step)
