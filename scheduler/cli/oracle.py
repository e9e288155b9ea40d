"""`scheduler oracle`: fill the facts store and ask it questions.

The group is defined here; each command lives in its own module (oracle_sync, oracle_import,
oracle_stats) and registers itself on :data:`app`.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The price oracle: spot price history, on-demand prices, placement scores, "
    "interruption frequencies.",
    no_args_is_help=True,
)
