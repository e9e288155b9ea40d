"""Import price and catalog files into the oracle: all files of one call in one transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from oracle.db import transaction
from oracle.errors import InputError
from oracle.importers.base import BadValue, Batch, FileContext, Table
from oracle.importers.detect import Detected, detect
from oracle.importers.zones import ZoneDirectory, ZoneError, check_region
from oracle.models import Base, IngestRunModel
from oracle.store import IngestRecorder, insert_ignore


@dataclass(frozen=True)
class ImportResult:
    """What one file gave: its kind, the records read and the rows inserted per table."""

    path: str
    kind: str
    format: str
    rows_read: int
    #: Rows inserted per table name; rows already stored (a re-import) count zero.
    rows_inserted: dict[str, int]
    #: The snapshot time of a file without timestamps (None for price history: each record
    #: carries its own), and where it came from ("--observed-at" or "file modification time").
    observed_at: datetime | None = None
    observed_at_from: str | None = None
    notes: tuple[str, ...] = field(default=())
    ingest_run_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "format": self.format,
            "rows_read": self.rows_read,
            "rows_inserted": dict(self.rows_inserted),
            "observed_at": self.observed_at,
            "observed_at_from": self.observed_at_from,
            "notes": list(self.notes),
            "ingest_run_id": self.ingest_run_id,
        }


def import_files(
    engine: Engine,
    paths: Sequence[str | PathLike[str]],
    *,
    now: datetime | None = None,
    observed_at: datetime | None = None,
    region: str | None = None,
) -> list[ImportResult]:
    """Import ``paths`` (formats told from content) in ONE transaction: all or nothing.

    ``now`` stamps the ingest runs (default: the clock); ``observed_at`` is the snapshot time of
    files that carry none (default: each file's modification time); ``region`` is the region of
    an on-demand price history without a region column (default us-east-1). Any bad file or row
    raises :class:`~oracle.errors.InputError` naming the file and line, and nothing is written.
    Results come back in the order of ``paths``.
    """
    if not paths:
        raise InputError("no files given; name one or more files to import")
    if observed_at is not None and observed_at.tzinfo is None:
        raise InputError("--observed-at needs a time zone, e.g. 2025-03-01T00:00:00+00:00")
    if region is not None:
        try:
            check_region(region)
        except ValueError as error:
            raise InputError(f"--region: {error}") from None
    # Tell every format before touching the database, so a wrong file fails fast.
    detected = [detect(Path(path).expanduser().absolute()) for path in paths]
    order = sorted(range(len(detected)), key=lambda i: detected[i].format.order)
    results: dict[int, ImportResult] = {}
    with transaction(engine) as session:
        zones = ZoneDirectory.load(session)
        for index in order:
            context = FileContext(
                detected[index].path, zones, observed_at=observed_at, region=region
            )
            results[index] = _import_one(session, detected[index], context, now)
    return [results[index] for index in range(len(detected))]


def _import_one(
    session: Session, detected: Detected, context: FileContext, now: datetime | None
) -> ImportResult:
    file_format = detected.format
    started = time.perf_counter()
    recorder = IngestRecorder(source="file", kind=file_format.kind, detail=str(detected.path))
    if now is not None:
        recorder.started_at = now
    # The run exists first so that spot rows can point at it; its figures are set at the end.
    run = recorder.finish(session, rows=0)
    context.ingest_run_id = run.id
    # Full chunks of rows are written while the file is read (bounded memory); a bad row
    # later in the file still rolls them back with the rest of the transaction.
    context.sink = lambda model, rows: insert_ignore(session, model, rows)
    try:
        batch = file_format.load(context, detected.payload)
    except (BadValue, ZoneError) as error:
        context.fail(None, str(error))
    if batch.rows_read == 0 and isinstance(detected.payload, Table):
        line = detected.payload.header_line + 1
        context.fail(line, "no data rows after the header; give a file with data")
    if batch.rows_read == 0:
        context.fail(None, "holds no records; give a file with data")
    written = batch.finish(context.sink)
    inserted = {_table_name(model): count for model, count in written.items()}
    _finish_run(run, recorder.detail, batch, inserted, duration_s=time.perf_counter() - started)
    return ImportResult(
        path=str(detected.path),
        kind=file_format.kind,
        format=file_format.name,
        rows_read=batch.rows_read,
        rows_inserted=inserted,
        observed_at=batch.observed_at,
        observed_at_from=batch.observed_at_from,
        notes=tuple(batch.notes),
        ingest_run_id=run.id,
    )


def _finish_run(
    run: IngestRunModel,
    detail: str,
    batch: Batch,
    inserted: dict[str, int],
    *,
    duration_s: float,
) -> None:
    run.rows = sum(inserted.values())
    run.duration_s = duration_s
    run.region = next(iter(batch.regions)) if len(batch.regions) == 1 else None
    if batch.observed_at is not None:
        # Mark a snapshot's observed_at and where it came from beside the path.
        note = f" (observed_at {batch.observed_at.isoformat()} from {batch.observed_at_from})"
        run.detail = (detail[: 512 - len(note)] + note)[:512]


def _table_name(model: type[Base]) -> str:
    return str(model.__table__.name)  # type: ignore[attr-defined]
