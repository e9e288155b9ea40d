"""Where each part's command group is attached to the root command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach every command group; one line per group."""
