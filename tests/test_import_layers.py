"""The packages import in one direction (scripts → agents → envs → decay_model), without cycles,
and the light entry points stay light.

The graph holds each module's module-level imports (``import x``, ``from x import y``); imports
inside functions, which run late and on purpose, are left out. ``from package import module``
counts as an import of that module, not of the package's ``__init__``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: lower layers first: a module may import its own layer and those below it
LAYERS = ("decay_model", "envs", "agents", "scripts")


def module_names() -> dict[str, Path]:
    """Every module of the four packages by dotted name (a package by its own name)."""
    names = {}
    for package in LAYERS:
        for path in (REPO_ROOT / package).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports at module level."""
    modules = module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named = [f"{node.module}.{alias.name}" for alias in node.names]
                submodules = [n for n in named if n in modules]
                targets = submodules if len(submodules) == len(node.names) else [node.module, *submodules]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_packages():
    graph = import_graph()
    assert {"envs", "agents.benchmark", "decay_model.logs.dataset", "scripts.common"} <= set(graph)
    assert "envs.config" in graph["envs.env"]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_a_layer_above_its_own():
    layer = {package: k for k, package in enumerate(LAYERS)}
    upward = [
        (source, target)
        for source, targets in import_graph().items()
        for target in targets
        if layer[target.split(".")[0]] > layer[source.split(".")[0]]
    ]
    assert upward == []


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("envs", ("torch", "pandas", "pyarrow", "scipy", "numba", "stable_baselines3")),
        ("decay_model.logs", ("torch",)),
    ],
)
def test_light_imports(module, absent):
    code = f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"import {module} loads {done.stdout.strip()}"
