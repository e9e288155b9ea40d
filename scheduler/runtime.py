"""The composition root: settings, the database engine and AWS clients, built once per command."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine

from oracle.db import ensure_schema, make_engine
from scheduler.config import Settings, load_settings


@dataclass
class Runtime:
    config_path: Path | None = None
    settings_override: Settings | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        return self.settings_override or load_settings(self.config_path)

    @cached_property
    def database_url(self) -> str:
        return self.settings.database.resolved_url()

    def raw_engine(self) -> Engine:
        """The engine without migrating (for `scheduler db`)."""
        return make_engine(self.database_url)

    @cached_property
    def engine(self) -> Engine:
        """The engine, migrated to the newest schema on first use."""
        engine = make_engine(self.database_url)
        ensure_schema(engine)
        return engine
