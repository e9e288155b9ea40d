"""Shared output helpers: rich tables for people, JSON for programs."""

from __future__ import annotations

import enum
import json
import sys
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="table for people, json for programs")
]


def emit_json(payload: Any) -> None:
    """Write ``payload`` as JSON on stdout (datetimes in ISO 8601).

    The document is encoded whole and written once: ``json.dump`` writes each of its pieces
    (about 60,000 for a plan with its candidates) separately, one system call each where stdout
    is unbuffered (``PYTHONUNBUFFERED``, or ``python -u``); ``json.dumps`` produces the same
    text."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_default) + "\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
