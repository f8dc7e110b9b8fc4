"""Reliability of the library layers (schedules, signals, optim): imports, inputs and limits."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import inject_rl

ROOT = pathlib.Path(inject_rl.__file__).parent
PACKAGES = ("schedules", "signals", "optim")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))}


def _imports(path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """Every inject_rl module `path` imports, at module level or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("inject_rl.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inject_rl."):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in modules else node.module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) & set(modules) for name, path in modules.items()}


def test_library_modules_import_without_a_cycle():
    # issue 11 item 7: schedules/_common imported _combinators inside a function (and
    # _combinators imports _common): a cycle hidden from module-level import order.
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_signals_imports_neither_optim_nor_schedules():
    for name, deps in _graph().items():
        if name.startswith("inject_rl.signals"):
            bad = sorted(d for d in deps if not d.startswith("inject_rl.signals"))
            assert not bad, f"{name} imports {bad}"


def test_signal_names_are_defined_once_in_signals():
    owners = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                targets = {
                    ast.Assign: lambda n: n.targets,
                    ast.AnnAssign: lambda n: [n.target],
                }.get(type(node), lambda n: [])(node)
                if any(isinstance(t, ast.Name) and t.id == "SIGNAL_NAMES" for t in targets):
                    owners.append(_module_name(path))
    assert owners == ["inject_rl.signals._names"]

    import inject_rl.optim
    import inject_rl.signals

    assert inject_rl.optim.SIGNAL_NAMES is inject_rl.signals.SIGNAL_NAMES  # compatible re-export


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_alone(package):
    # A fresh interpreter per package: an import order that only works after another package was
    # imported first would pass inside one pytest process.
    result = subprocess.run(
        [sys.executable, "-c", f"import inject_rl.{package}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
