"""The harness imports only ``oracle`` (never ``scheduler``) and never vllm itself.

``bench/perf`` holds every part's benchmark scripts (the planner's import ``scheduler``); of
those only the harness's own is checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


HARNESS = [*sorted(BENCH.glob("*.py")), BENCH / "perf" / "harness.py"]


@pytest.mark.parametrize("path", HARNESS, ids=lambda p: p.name)
def test_bench_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top not in ("scheduler", "vllm"), f"{path.name} imports {name}"
