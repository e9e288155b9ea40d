"""`scheduler db`: migrate the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from scheduler.cli.output import console

if TYPE_CHECKING:
    from scheduler.runtime import Runtime

app = typer.Typer(help="Create and migrate the database (SQLite file or PostgreSQL).")


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: str = typer.Option("head", help="Alembic revision to migrate to."),
) -> None:
    """Migrate the database to the newest schema (or to --revision)."""
    from oracle import db

    runtime: Runtime = ctx.obj
    engine = runtime.raw_engine()
    db.upgrade(engine, revision)
    url = engine.url.render_as_string(hide_password=True)
    console.print(f"{url} is at revision {db.current_revision(engine)}")


@app.command()
def downgrade(
    ctx: typer.Context, revision: str = typer.Argument(help="Revision to go back to, or base.")
) -> None:
    """Migrate the database back to REVISION (``base`` drops every table)."""
    from oracle import db

    runtime: Runtime = ctx.obj
    engine = runtime.raw_engine()
    db.downgrade(engine, revision)
    console.print(f"database is at revision {db.current_revision(engine) or 'base'}")


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the database's revision and the newest one."""
    from oracle import db

    runtime: Runtime = ctx.obj
    engine = runtime.raw_engine()
    console.print(f"current: {db.current_revision(engine) or 'none'}")
    console.print(f"head:    {db.head_revision(engine)}")
