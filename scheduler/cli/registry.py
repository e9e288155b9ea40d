"""Where each part's command group is attached to the root command line."""

from __future__ import annotations

import importlib

import typer

#: Modules that add commands to the oracle group (each imports scheduler.cli.oracle.app).
ORACLE_COMMAND_MODULES = (
    "scheduler.cli.oracle_sync",
    "scheduler.cli.oracle_import",
    "scheduler.cli.oracle_stats",
)


def register(app: typer.Typer) -> None:
    """Attach every command group; one line per group."""
    from scheduler.cli import oracle

    for name in ORACLE_COMMAND_MODULES:
        _import_if_present(name)
    app.add_typer(oracle.app, name="oracle")
    from scheduler.cli import plan

    app.command("plan", help=plan.HELP)(plan.plan)
    app.add_typer(importlib.import_module("scheduler.cli.bench").app, name="bench")
    from scheduler.cli import backtest

    app.command("backtest", help=backtest.HELP)(backtest.backtest)
    from scheduler.cli import fleet, serve

    app.command("serve", help=serve.HELP)(serve.serve)
    fleet.register(app)


def _import_if_present(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
