"""A command loads only what it uses: `scheduler --help` imports none of the heavy libraries, and
`scheduler plan` on a database already at the newest revision imports no migration machinery, no
pandas or scipy, no AWS or HTTP client and no ORM. Checked in a child process's
``sys.modules``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.cli.backtest import HELP as BACKTEST_HELP
from scheduler.config import POLICY_NAMES

# tests/scheduler/cli/test_plan.py builds the same oracle; its fixture is reused here.
from tests.scheduler.cli.test_plan import AS_OF, snapshot_env  # noqa: F401

#: What no `--help` may import (together they cost a command about 1.5 s).
HEAVY_FOR_HELP = (
    "aiohttp",
    "alembic",
    "boto3",
    "botocore",
    "httpx",
    "numpy",
    "pandas",
    "scipy",
    "sqlalchemy",
    "yaml",
)
#: What `scheduler plan --format json` on a current database must not import: it reads the
#: oracle's Core tables (oracle.tables), without the ORM or its mapped classes.
HEAVY_FOR_PLAN = (
    "aiohttp",
    "alembic",
    "boto3",
    "botocore",
    "httpx",
    "pandas",
    "scipy",
    "yaml",
    "sqlalchemy.orm",
    "oracle.models",
    "scheduler.models",
)

CHILD = """
import json, sys
from scheduler.cli.main import main
sys.argv = ["scheduler", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
with open(OUT, "w") as out:
    json.dump(sorted(sys.modules), out)
"""


def loaded_modules(tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The modules a `scheduler ARGS` process has imported when it ends (exit code 0)."""
    out = tmp_path / "modules.json"
    code = CHILD.replace("OUT", repr(str(out)))
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return set(json.loads(out.read_text()))


def imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if any(m == name or m.startswith(f"{name}.") for m in modules)]


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    modules = loaded_modules(tmp_path, ["--help"])
    assert "scheduler.cli.plan" in modules  # the child did build the command line
    # Nor pydantic: reading settings is for commands that run.
    assert imported(modules, (*HEAVY_FOR_HELP, "pydantic")) == []


@pytest.mark.parametrize(
    "args", [["plan", "--help"], ["bench", "run", "--help"], ["oracle", "sync", "--help"]]
)
def test_command_help_imports_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    """(Typer itself loads pydantic once a sub-command is parsed, to coerce ``--config``.)"""
    modules = loaded_modules(tmp_path, args)
    assert imported(modules, HEAVY_FOR_HELP) == []


def test_plan_on_a_current_database_loads_no_migrations(
    tmp_path: Path,
    snapshot_env: dict[str, str],  # noqa: F811
) -> None:
    args = ["plan", "--slo", "500tok/s", "--as-of", AS_OF, "--format", "json"]
    modules = loaded_modules(tmp_path, args, snapshot_env)
    assert "scheduler.solver" in modules  # it planned
    assert imported(modules, HEAVY_FOR_PLAN) == []


def test_backtest_help_names_every_policy() -> None:
    """The help writes the policy names out (no pydantic for `--help`); they must agree."""
    listed = re.search(r"Policies: ([^.;]+)", BACKTEST_HELP)
    assert listed is not None
    assert tuple(listed.group(1).split(", ")) == POLICY_NAMES
