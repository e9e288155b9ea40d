"""Benchmark of the oracle's spot price write path and pool statistics (not a test).

    python -m benchmarks.oracle_ingest [--rows 1000000] [--backends sqlite,postgresql]

Generates the 90-day sample history of every GPU pool in every region of the embedded catalog,
with the change rate scaled to about ``--rows`` change records, then on each backend:

- ingests it through the oracle's write path (``oracle.store.insert_ignore`` of ready row
  dictionaries, its input format, in one transaction, into a fresh migrated database) and
  reports rows/s;
- loads the same rows into another fresh database the fastest plain way (SQLite: one
  ``executemany`` of ready tuples; PostgreSQL: ``COPY``) and reports rows/s, and the ratio of
  the two (goal: >= 0.5);
- computes the statistics of every pool (``oracle.stats.pool_stats``) and compares the time with
  the ingest (goal: less).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from oracle import db
from oracle.models import SpotPriceModel
from oracle.sample import catalog, generator
from oracle.sample.ingest import spot_rows
from oracle.stats import pool_stats
from oracle.store import insert_ignore

COLUMNS = (
    "source",
    "source_detail",
    "observed_at",
    "region",
    "zone",
    "availability_zone",
    "availability_zone_id",
    "instance_type",
    "product_description",
    "timestamp",
    "price_usd_per_hour",
    "ingest_run_id",
)
DEFAULT_POSTGRES_URL = os.environ.get(
    "SCHEDULER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SEED = 2026
END = datetime(2026, 11, 28, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="change records to aim for")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()

    rows = generate(args.rows)
    print(f"generated {len(rows):,} change records of {len(catalog.pools()):,} pools", flush=True)
    results = []
    for backend in args.backends.split(","):
        with fresh_database(backend, args.postgres_url) as url:
            write_s, stats_s, pools = write_path(url, rows)
        with fresh_database(backend, args.postgres_url) as url:
            raw_s = raw_load(url, rows)
        results.append((backend, write_s, raw_s, stats_s, pools))
        report(len(rows), *results[-1])
    print()
    print(
        f"{'backend':<11} {'write path rows/s':>18} {'raw rows/s':>12} {'ratio':>6} "
        f"{'ingest s':>9} {'stats s':>8} {'pools':>6}"
    )
    for backend, write_s, raw_s, stats_s, pools in results:
        print(
            f"{backend:<11} {len(rows) / write_s:>18,.0f} {len(rows) / raw_s:>12,.0f} "
            f"{raw_s / write_s:>6.2f} {write_s:>9.1f} {stats_s:>8.1f} {pools:>6}"
        )


def generate(target_rows: int) -> list[tuple[Any, ...]]:
    """The change records of every pool over 90 days, as tuples in :data:`COLUMNS` order."""
    pools = catalog.pools()
    start = END - timedelta(days=90)
    base = sum(
        len(h.times_s) for h in generator.spot_histories(pools, seed=SEED, start=start, end=END)
    )
    scale = max(target_rows / base, 1.0)
    histories = generator.spot_histories(
        pools, seed=SEED, start=start, end=END, changes_per_day_scale=scale
    )
    return [tuple(row[c] for c in COLUMNS) for row in spot_rows(histories, seed=SEED)]


def write_path(url: str, rows: list[tuple[Any, ...]]) -> tuple[float, float, int]:
    """Seconds to ingest ``rows`` through insert_ignore, seconds to compute every pool's
    statistics afterwards, and the number of pools."""
    engine = db.make_engine(url)
    # Ready input, as the raw load gets ready tuples: the write path takes dictionaries.
    ready = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    started = time.perf_counter()
    with db.transaction(engine) as session:
        inserted = insert_ignore(session, SpotPriceModel, ready)
    write_s = time.perf_counter() - started
    assert inserted == len(rows), (inserted, len(rows))
    started = time.perf_counter()
    with db.transaction(engine) as session:
        stats = pool_stats(session, as_of=END)
    stats_s = time.perf_counter() - started
    engine.dispose()
    return write_s, stats_s, len(stats)


def raw_load(url: str, rows: list[tuple[Any, ...]]) -> float:
    """Seconds to load the same rows the fastest plain way on the backend."""
    engine = db.make_engine(url)
    names = ", ".join(COLUMNS)
    if engine.dialect.name == "sqlite":
        # Ready tuples: datetimes in the text form SQLAlchemy stores them in on SQLite.
        ready = [_sqlite_ready(row) for row in rows]
        path = sa.engine.make_url(url).database
        assert path
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        marks = ", ".join("?" for _ in COLUMNS)
        started = time.perf_counter()
        with connection:
            connection.executemany(f"INSERT INTO spot_prices ({names}) VALUES ({marks})", ready)
        elapsed = time.perf_counter() - started
        connection.close()
    else:
        raw = engine.raw_connection()
        started = time.perf_counter()
        cursor = raw.cursor()
        with cursor.copy(f"COPY spot_prices ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw.commit()
        elapsed = time.perf_counter() - started
        raw.close()
    engine.dispose()
    return elapsed


def report(
    count: int, backend: str, write_s: float, raw_s: float, stats_s: float, pools: int
) -> None:
    ratio = raw_s / write_s
    print(
        f"{backend}: write path {count / write_s:,.0f} rows/s ({write_s:.1f} s); "
        f"raw {'executemany' if backend == 'sqlite' else 'COPY'} {count / raw_s:,.0f} rows/s "
        f"({raw_s:.1f} s); ratio {ratio:.2f} (goal >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}); "
        f"stats of {pools:,} pools {stats_s:.1f} s (goal < ingest: "
        f"{'met' if stats_s < write_s else 'MISSED'})",
        flush=True,
    )


@contextmanager
def fresh_database(backend: str, postgres_url: str) -> Iterator[str]:
    """A freshly migrated database, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
            engine = db.make_engine(url)
            db.upgrade(engine)
            engine.dispose()
            yield url
        return
    name = f"bench_ingest_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_url).set(database=name).render_as_string(False)
    try:
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _sqlite_ready(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        if isinstance(value, datetime)
        else value
        for value in row
    )


if __name__ == "__main__":
    main()
