"""The write path of the oracle: bulk inserts that ignore rows already present.

Every function takes an open session (the caller owns the transaction, so an import is all or
nothing) and plain dictionaries keyed by the model's column names. Rows that collide with a
unique key already stored are skipped, so re-ingesting the same data adds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from oracle.models import Base, IngestRunModel

#: Rows per INSERT statement; keeps each statement under SQLite's and psycopg's parameter limits.
BATCH_ROWS = 2000


def insert_ignore(session: Session, model: type[Base], rows: Iterable[dict[str, Any]]) -> int:
    """Insert ``rows`` into ``model``'s table, skipping unique-key collisions; return the count
    of rows actually inserted."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    key = next(iter(table.primary_key.columns))
    inserted = 0
    for batch in _batches(rows, BATCH_ROWS):
        # RETURNING counts exactly what went in (rowcount is unreliable for executemany).
        statement = _insert(dialect, table).on_conflict_do_nothing().returning(key)
        inserted += len(session.execute(statement, batch).all())
    return inserted


def upsert(
    session: Session,
    model: type[Base],
    rows: Iterable[dict[str, Any]],
    *,
    key: Sequence[str],
) -> int:
    """Insert ``rows`` or update the stored row with the same ``key`` columns; return the count."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    count = 0
    for batch in _batches(rows, BATCH_ROWS):
        statement = _insert(dialect, table)
        updates = {
            column.name: statement.excluded[column.name]
            for column in table.columns
            if column.name not in key and not column.primary_key
        }
        statement = statement.on_conflict_do_update(index_elements=list(key), set_=updates)
        session.execute(statement, batch)
        count += len(batch)
    return count


@dataclass
class IngestRecorder:
    """Times one ingest and records it in ``ingest_runs`` (in its own short transaction)."""

    source: str
    kind: str
    region: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()

    def finish(
        self, session: Session, *, rows: int, status: str = "ok", error: str | None = None
    ) -> IngestRunModel:
        run = IngestRunModel(
            source=self.source,
            kind=self.kind,
            region=self.region,
            detail=self.detail[:512],
            started_at=self.started_at,
            duration_s=time.perf_counter() - self._t0,
            rows=rows,
            status=status,
            error=error,
        )
        session.add(run)
        session.flush()
        return run


def _insert(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database dialect {dialect!r} is not supported")


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch
