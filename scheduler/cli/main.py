"""Entry point of the `scheduler` command line.

Sub-command modules register themselves here; each is a thin layer over service functions.
Errors the user can fix print one line on stderr and exit with code 2 (1 for an infeasible plan):
the error boundary is :mod:`scheduler.cli.boundary`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli import boundary, registry
from scheduler.cli import db as db_cli
from scheduler.runtime import Runtime

app = typer.Typer(
    help="Cost-optimizing scheduler for serving LLMs with vLLM on EC2 Spot GPU instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain (click) help: typer's rich help formatter loads rich.markdown, pygments and
    # rich.traceback, about 0.3 s, as much as typer and rich.console themselves (see
    # benchmarks/cli.py); `scheduler --help` stays within 2x of importing those two.
    rich_markup_mode=None,
)
app.add_typer(db_cli.app, name="db")


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Configuration file (default: $SCHEDULER_CONFIG, else ./config.toml if present).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    ctx.obj = Runtime(config_path=config)


registry.register(app)


def main() -> None:
    """The ``scheduler`` command: every error a user can cause ends in one line on stderr and
    exit code 2 (see :mod:`scheduler.cli.boundary`)."""
    sys.exit(boundary.run(app))
