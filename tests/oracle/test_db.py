"""Migrations produce exactly the models' schema, on SQLite and PostgreSQL, and go back down."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import scheduler.models  # noqa: F401  (the service tables share Base.metadata)
from oracle import db
from oracle.errors import DatabaseError
from oracle.models import Base, IngestRunModel


def test_upgrade_head_matches_models_and_downgrade_base_empties(
    backend: str, empty_database: Callable[[str], str]
) -> None:
    engine = db.make_engine(empty_database(backend))
    db.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    assert db.current_revision(engine) == db.head_revision(engine)

    db.downgrade(engine, "base")
    tables = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    assert db.current_revision(engine) is None
    engine.dispose()


def test_ensure_schema_creates_a_fresh_sqlite_file(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "nested" / "dir" / "fresh.sqlite3"  # type: ignore[operator]
    engine = db.make_engine(f"sqlite:///{path}")
    db.ensure_schema(engine)
    assert set(Base.metadata.tables) <= set(sa.inspect(engine).get_table_names())
    db.ensure_schema(engine)  # a second call is a no-op
    assert db.current_revision(engine) == db.head_revision(engine)


def test_datetimes_come_back_aware_utc(engine: sa.Engine) -> None:
    started = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with db.transaction(engine) as session:
        session.add(IngestRunModel(source="file", kind="x", started_at=started, status="ok"))
    with db.transaction(engine) as session:
        run = session.scalars(sa.select(IngestRunModel)).one()
    assert run.started_at == started
    assert run.started_at.tzinfo is not None
    assert run.started_at.utcoffset() == timedelta(0)
    assert run.started_at.astimezone(UTC).hour == 10


def test_transaction_rolls_back_on_error(engine: sa.Engine) -> None:
    now = datetime.now(UTC)
    with pytest.raises(RuntimeError), db.transaction(engine) as session:
        session.add(IngestRunModel(source="file", kind="x", started_at=now, status="ok"))
        session.flush()
        raise RuntimeError("boom")
    with db.transaction(engine) as session:
        assert session.scalars(sa.select(IngestRunModel)).all() == []


def test_unreachable_database_is_a_one_line_error() -> None:
    engine = db.make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseError) as caught:
        db.ensure_schema(engine)
    message = str(caught.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message
    assert "SCHEDULER_DATABASE_URL" in message
