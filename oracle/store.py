"""The write path of the oracle: bulk inserts that ignore rows already present.

Every function takes an open session (the caller owns the transaction, so an import is all or
nothing) and plain dictionaries keyed by the model's column names. Rows that collide with a
unique key already stored are skipped, so re-ingesting the same data adds nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from oracle.models import Base, IngestRunModel

#: Rows per INSERT statement; keeps each statement under SQLite's and psycopg's parameter limits.
BATCH_ROWS = 2000
#: Chunks of at least this many rows (all with the same keys) take the bulk path: one
#: executemany of INSERT OR IGNORE on SQLite; on PostgreSQL a COPY, or when a row collides, a
#: COPY into a temporary table then one INSERT ... SELECT ... ON CONFLICT DO NOTHING.
#: ``python -m benchmarks.oracle_ingest`` (a million spot price rows): 0.68 (SQLite) and 0.70
#: (PostgreSQL) of the raw bulk rate, where INSERT ... RETURNING batches reached 0.40 and 0.07.
BULK_MIN_ROWS = 5000
#: Rows per bulk chunk (bounds the memory of the prepared tuples).
BULK_CHUNK_ROWS = 50_000


def insert_ignore(session: Session, model: type[Base], rows: Iterable[dict[str, Any]]) -> int:
    """Insert ``rows`` into ``model``'s table, skipping unique-key collisions; return the count
    of rows actually inserted."""
    table: Any = model.__table__
    dialect = session.get_bind().dialect.name
    key = next(iter(table.primary_key.columns))
    inserted = 0
    for chunk in _batches(rows, BULK_CHUNK_ROWS):
        columns = _bulk_columns(table, chunk) if len(chunk) >= BULK_MIN_ROWS else None
        if columns is not None and dialect in ("sqlite", "postgresql"):
            inserted += _bulk_insert_ignore(session, table, chunk, columns)
            continue
        for batch in _batches(chunk, BATCH_ROWS):
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


#: A column of a bulk insert, whether the rows hold it, and else its scalar default.
_BulkColumn = tuple[Any, bool, Any]


def _bulk_columns(table: Any, rows: list[dict[str, Any]]) -> list[_BulkColumn] | None:
    """The columns to write in bulk as (column, taken from the rows?, default), or None when
    the rows cannot go the bulk way (keys differ between rows, an unknown key, or a missing
    column whose default is computed in Python): the statement path handles those as before."""
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows) or not set(keys) <= set(table.columns.keys()):
        return None
    columns: list[_BulkColumn] = []
    for column in table.columns:
        if column.name in keys:
            columns.append((column, True, None))
        elif column.default is not None:
            if not column.default.is_scalar:
                return None
            columns.append((column, False, column.default.arg))
        # Otherwise the column is left out, as the statement path leaves it out: the
        # database's default (autoincrement, server default or NULL) applies.
    return columns


def _bulk_insert_ignore(
    session: Session, table: Any, rows: list[dict[str, Any]], columns: list[_BulkColumn]
) -> int:
    """Insert ``rows`` skipping unique-key collisions, in the session's transaction, through
    the driver's bulk interface; returns the exact count inserted."""
    session.flush()
    connection = session.connection()
    dialect = connection.dialect
    # Column by column, each value through its type's bind processor (~2x faster than row by
    # row). Python-level types (UTCDateTime) convert each distinct value once per chunk: a
    # record's timestamp and observed_at are often the same moment.
    converted: dict[Any, dict[Any, Any]] = {}
    prepared: list[list[Any]] = []
    for column, from_row, default in columns:
        raw = list(map(itemgetter(column.name), rows)) if from_row else [default] * len(rows)
        # The dialect's own processor, as compiled statements use (SQLite stores datetimes
        # as text in SQLAlchemy's fixed format; the generic processor would not).
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is None:
            prepared.append(raw)
        elif isinstance(column.type, TypeDecorator):
            fast = _sqlite_datetime_text(processor, raw) if dialect.name == "sqlite" else None
            if fast is None:
                fast = _convert_once(processor, raw, converted.setdefault(type(column.type), {}))
            prepared.append(fast)
        else:
            prepared.append(list(map(processor, raw)))
    values = list(zip(*prepared, strict=True))
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(column.name) for column, _, _ in columns)
    target = quote(table.name)
    driver = connection.connection.dbapi_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        if dialect.name == "sqlite":
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT OR IGNORE INTO {target} ({names}) VALUES ({marks})", values)
            # sqlite3 sums executemany's changes; ignored rows change nothing.
            return int(cursor.rowcount)
        if _copy_if_no_collision(cursor, target, names, values):
            return len(values)
        staging = quote(f"_bulk_{uuid.uuid4().hex[:16]}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} AS SELECT {names} FROM {target} WITH NO DATA"
        )
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for value in values:
                copy.write_row(value)
        # One statement, so its rowcount is exact; DO NOTHING also skips duplicates within it.
        cursor.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {staging} ON CONFLICT DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        cursor.execute(f"DROP TABLE {staging}")
        return inserted
    finally:
        cursor.close()


def _copy_if_no_collision(cursor: Any, target: str, names: str, values: list[Any]) -> bool:
    """COPY straight into the table, in a savepoint: True if done; False (and nothing
    written) when a row collides with a stored one or another row. A first backfill never
    collides, and this takes about a third off its time against staging every row (measured
    with benchmarks/oracle_ingest)."""
    from psycopg import errors

    cursor.execute("SAVEPOINT bulk_copy")
    try:
        with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for value in values:
                copy.write_row(value)
    except errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT bulk_copy")
        cursor.execute("RELEASE SAVEPOINT bulk_copy")
        return False
    cursor.execute("RELEASE SAVEPOINT bulk_copy")
    return True


def _sqlite_datetime_text(processor: Any, raw: list[Any]) -> list[str] | None:
    """Aware datetimes as SQLite text, converted for the whole column at once with numpy
    (~5x faster than the type's processor per value; most of a bulk ingest's Python time).

    Used only when every value is an aware datetime and the result matches the column's own
    processor on the first, middle and last values; otherwise None (use the processor).
    """
    if not raw or any(type(value) is not datetime or value.tzinfo is None for value in raw):
        return None  # naive datetimes: the processor refuses them with its own message
    seconds = np.fromiter((value.timestamp() for value in raw), dtype=np.float64, count=len(raw))
    # Exact to the microsecond: epoch seconds of this century carry ~0.2 us of float error.
    micros = np.rint(seconds * 1e6).astype(np.int64)
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us").tolist()
    converted = [value.replace("T", " ") for value in text]
    for index in {0, len(raw) // 2, len(raw) - 1}:
        if processor(raw[index]) != converted[index]:
            return None
    return converted


def _convert_once(processor: Any, raw: list[Any], known: dict[Any, Any]) -> list[Any]:
    try:
        known.update(
            (value, processor(value)) for value in dict.fromkeys(raw) if value not in known
        )
    except TypeError:  # unhashable values (JSON documents): convert each
        return list(map(processor, raw))
    return list(map(known.__getitem__, raw))


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch
