"""Entry point of the `scheduler` command line.

Sub-command modules register themselves here; each is a thin layer over service functions.
Errors the user can fix print one line on stderr and exit with code 2 (1 for an infeasible plan).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from oracle.errors import OracleError
from scheduler.cli import db as db_cli
from scheduler.cli import registry
from scheduler.cli.output import err_console
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
    try:
        app()
    except OracleError as error:
        err_console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(error, "exit_code", 2))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
