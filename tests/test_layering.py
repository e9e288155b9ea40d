"""The layering of DESIGN.md: `oracle` imports neither `bench` nor `scheduler`; `bench` imports
only `oracle` (its `bench.perf` scripts measure the whole system and may import `scheduler`);
neither imports vllm, which the harness reaches over HTTP only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str, *, skip: str | None = None) -> list[Path]:
    paths = sorted((REPO_ROOT / package).rglob("*.py"))
    assert paths, f"no modules found under {package}/"
    return [p for p in paths if skip is None or skip not in p.relative_to(REPO_ROOT).parts]


@pytest.mark.parametrize(
    ("package", "forbidden", "skip"),
    [("oracle", {"bench", "scheduler", "vllm"}, None), ("bench", {"scheduler", "vllm"}, "perf")],
)
def test_package_does_not_import_upper_layers(
    package: str, forbidden: set[str], skip: str | None
) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_packages(path) & forbidden)
        for path in modules(package, skip=skip)
        if imported_packages(path) & forbidden
    }
    assert offenders == {}


def test_the_check_sees_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom scheduler.planner import make_plan\nfrom . import x\n")
    assert imported_packages(module) == {"os", "scheduler"}
