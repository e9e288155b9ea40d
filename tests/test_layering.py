"""The layering of DESIGN.md, and no import circles.

- ``oracle`` (the facts store) imports neither ``bench`` nor ``scheduler``;
- ``bench`` (the goodput harness the product ships) imports only ``oracle``;
- ``scheduler`` imports ``bench`` only in its bench commands (``scheduler/cli/bench*.py``);
- none of them imports ``benchmarks`` (the project's own speed scripts, which may import all
  three) or vllm, which the harness reaches over HTTP only;
- no module-level import circle among the project's modules. Imports inside functions (deferred
  so that a command loads only what it uses) and under ``if TYPE_CHECKING:`` do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("oracle", "bench", "scheduler", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, *, top_level_only: bool) -> Iterator[str]:
    """Absolute module names imported; with ``top_level_only``, only those that run at import
    time (module scope, outside ``if TYPE_CHECKING:``)."""
    body: list[ast.stmt] = tree.body if isinstance(tree, ast.Module) else []
    nodes = list(ast.walk(tree)) if not top_level_only else _module_scope(body)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` names the submodule; ``from module import name``
            # the module. Both spellings are yielded; the graph keeps the one that is a module.
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _module_scope(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for statement in body:
        if isinstance(statement, ast.If):
            test = ast.unparse(statement.test)
            if "TYPE_CHECKING" in test:
                out.extend(_module_scope(statement.orelse))
                continue
            out.extend(_module_scope(statement.body) + _module_scope(statement.orelse))
        elif isinstance(statement, ast.Try):
            out.extend(_module_scope(statement.body))
        else:
            out.append(statement)
    return out


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {name.split(".")[0] for name in _imports(tree, top_level_only=False)}


def modules(package: str) -> list[Path]:
    paths = sorted((REPO_ROOT / package).rglob("*.py"))
    assert paths, f"no modules found under {package}/"
    return paths


def _is_bench_command(path: Path) -> bool:
    relative = path.relative_to(REPO_ROOT)
    return relative.parts[:2] == ("scheduler", "cli") and relative.name.startswith("bench")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("oracle", {"bench", "scheduler", "benchmarks", "vllm"}),
        ("bench", {"scheduler", "benchmarks", "vllm"}),
        ("scheduler", {"bench", "benchmarks", "vllm"}),
    ],
)
def test_package_does_not_import_upper_layers(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_packages(path) & forbidden)
        for path in modules(package)
        if imported_packages(path) & forbidden
        and not (
            package == "scheduler"
            and _is_bench_command(path)
            and imported_packages(path) & forbidden <= {"bench"}
        )
    }
    assert offenders == {}


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports at import time."""
    paths = {_module_name(p): p for package in PACKAGES for p in modules(package)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        imported = set(_imports(tree, top_level_only=True))
        # ``from package import submodule`` is an edge to the submodule, not to the package.
        parents = {
            module.rsplit(".", 1)[0]
            for module in imported
            if module in paths
            and "." in module
            and module.rsplit(".", 1)[0] in imported
            and not _names_attribute(tree, module.rsplit(".", 1)[0], paths)
        }
        graph[name] = {m for m in imported - parents if m in paths and m != name}
    return graph


def _names_attribute(tree: ast.AST, package: str, paths: dict[str, Path]) -> bool:
    """Whether some ``from package import name`` in ``tree`` names something that is not one of
    the package's submodules (so that the package's ``__init__`` itself is used)."""
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == package
        and any(f"{package}.{alias.name}" not in paths for alias in node.names)
        for node in _module_scope(tree.body if isinstance(tree, ast.Module) else [])
    )


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    graph = import_graph()
    # A package's __init__ importing its own submodules is not a circle that matters when the
    # submodules do not import the package back; the check keeps every edge regardless.
    assert circles(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_check_sees_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nfrom scheduler.planner import make_plan\nfrom . import x\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bench.client\n"
        "def f():\n    import oracle.db\n"
    )
    assert imported_packages(module) == {"os", "scheduler", "typing", "bench", "oracle"}
    tree = ast.parse(module.read_text())
    top = {name.split(".")[0] for name in _imports(tree, top_level_only=True)}
    assert top == {"os", "scheduler", "typing"}
