"""The composition root: settings, the database engine and AWS clients, built once per command."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from scheduler.config import Settings

# The database and settings modules are imported on first use: every command builds a Runtime,
# and `scheduler --help` should not pay for SQLAlchemy, Alembic or pydantic.


@dataclass
class Runtime:
    config_path: Path | None = None
    settings_override: Settings | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        from scheduler.config import load_settings

        return self.settings_override or load_settings(self.config_path)

    @cached_property
    def database_url(self) -> str:
        return self.settings.database.resolved_url()

    def raw_engine(self) -> Engine:
        """The engine without migrating (for `scheduler db`)."""
        from oracle.db import make_engine

        return make_engine(self.database_url)

    @cached_property
    def engine(self) -> Engine:
        """The engine, migrated to the newest schema on first use."""
        from oracle.db import ensure_schema, make_engine

        engine = make_engine(self.database_url)
        ensure_schema(engine)
        return engine
