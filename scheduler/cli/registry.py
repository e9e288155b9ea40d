"""Where each part's command group is attached to the root command line.

Command modules that add to a group (``oracle_sync``, ``oracle_import``, ``oracle_stats`` on
the oracle group; ``bench_local`` on the bench group) register themselves when imported.
"""

from __future__ import annotations

import typer

from scheduler.cli import (
    backtest,
    bench,
    bench_local,  # noqa: F401  (adds `bench local`)
    fleet,
    oracle,
    oracle_import,  # noqa: F401  (adds `oracle import`)
    oracle_stats,  # noqa: F401  (adds `oracle stats`)
    oracle_sync,  # noqa: F401  (adds `oracle sync`)
    plan,
    serve,
)


def register(app: typer.Typer) -> None:
    """Attach every command group and command to the root ``app``."""
    app.add_typer(oracle.app, name="oracle")
    app.command("plan", help=plan.HELP)(plan.plan)
    app.add_typer(bench.app, name="bench")
    app.command("backtest", help=backtest.HELP)(backtest.backtest)
    app.command("serve", help=serve.HELP)(serve.serve)
    fleet.register(app)
