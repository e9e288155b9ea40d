"""Alembic environment: migrates the engine the scheduler passes in, or SCHEDULER_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

import scheduler.models  # noqa: F401  (service tables, for autogenerate)
from oracle.db import make_engine
from oracle.models import Base, UTCDateTime

target_metadata = Base.metadata


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Write UTCDateTime as a plain timezone-aware DateTime, so migrations never import models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        url = os.environ.get("SCHEDULER_DATABASE_URL") or context.config.get_main_option(
            "sqlalchemy.url"
        )
        if not url:
            raise SystemExit("set SCHEDULER_DATABASE_URL to the database to migrate")
        engine = make_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
        )
        context.run_migrations()


run_migrations()
