"""What every file format shares: the parsed rows of one file, where an error is, value parsers.

A format's loader turns a file into a :class:`Batch` (rows per table, nothing written yet); the
service writes every batch of one command in a single transaction. Loaders report a bad value
by raising :class:`BadValue` inside ``context.at(where)``, which names the file and line (or, in
JSON, the key) in the :class:`~oracle.errors.InputError` the user sees.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from oracle.errors import InputError
from oracle.importers.zones import ZoneDirectory, ZoneError
from oracle.models import Base

#: How the observed_at of a snapshot file was chosen.
OBSERVED_FROM_OPTION = "--observed-at"
OBSERVED_FROM_MTIME = "file modification time"

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")


class BadValue(ValueError):
    """A value that cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Batch:
    """The rows one file yields, per table, before anything is written."""

    rows_read: int = 0
    rows: dict[type[Base], list[dict[str, Any]]] = field(default_factory=dict)
    #: The snapshot time of the file's facts (None: each record has its own timestamp).
    observed_at: datetime | None = None
    observed_at_from: str | None = None
    notes: list[str] = field(default_factory=list)
    regions: set[str] = field(default_factory=set)

    def add(self, model: type[Base], row: dict[str, Any]) -> None:
        self.rows.setdefault(model, []).append(row)

    def expect(self, *models: type[Base]) -> None:
        """Report these tables even when the file yields no row for them."""
        for model in models:
            self.rows.setdefault(model, [])


@dataclass
class FileContext:
    """One file being imported, and what its loader may consult."""

    path: Path
    zones: ZoneDirectory
    observed_at: datetime | None = None
    region: str | None = None
    #: Set by the service once the file's ingest run exists (spot rows point at it).
    ingest_run_id: int | None = None

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def source_detail(self) -> str:
        return str(self.path)[-512:]

    def fail(self, where: str | int | None, message: str) -> NoReturn:
        location = f"{self.label}:{where}" if where is not None else self.label
        raise InputError(f"{location}: {message}")

    @contextmanager
    def at(self, where: str | int) -> Iterator[None]:
        """Turn a :class:`BadValue` or zone error raised inside into an error naming ``where``."""
        try:
            yield
        except (BadValue, ZoneError) as error:
            self.fail(where, str(error))

    def snapshot_time(self, batch: Batch) -> datetime:
        """The time a snapshot file's facts were true: ``--observed-at``, else the file's
        modification time (recorded on the batch, so the output says which)."""
        if self.observed_at is not None:
            batch.observed_at, batch.observed_at_from = self.observed_at, OBSERVED_FROM_OPTION
        else:
            mtime = datetime.fromtimestamp(self.path.stat().st_mtime, tz=UTC)
            batch.observed_at, batch.observed_at_from = mtime, OBSERVED_FROM_MTIME
        return batch.observed_at


@dataclass
class Table:
    """A delimited text file: normalised column names and its data rows with line numbers."""

    text: str
    delimiter: str
    columns: list[str]

    def records(self, context: FileContext) -> Iterator[tuple[int, dict[str, str]]]:
        reader = csv.reader(io.StringIO(self.text), delimiter=self.delimiter)
        next(reader, None)
        for fields in reader:
            line = reader.line_num
            if not fields or all(not value.strip() for value in fields):
                continue
            if len(fields) != len(self.columns):
                context.fail(
                    line,
                    f"expected {len(self.columns)} fields ({self.delimiter!r}-separated), "
                    f"found {len(fields)}; fix the row or remove it",
                )
            values = zip(self.columns, fields, strict=True)
            yield line, {name: value.strip() for name, value in values}


#: A format's loader: (file, parsed payload) -> rows per table.
Loader = Callable[[FileContext, Any], Batch]


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; one without an offset is taken as UTC
    (as AWS writes them)."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(
            f"bad timestamp {text!r}; write ISO 8601, e.g. 2021-03-02T01:45:29+00:00"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_price(text: Any, *, name: str = "price") -> float:
    """A price in USD per hour: a finite number, not negative."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadValue(
            f"{name} {text!r} is not a number; write US dollars per hour, e.g. 0.5260"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise BadValue(f"{name} {text!r} is not a price; write a number of dollars >= 0")
    return value


def parse_int(text: Any, *, name: str, minimum: int = 0) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise BadValue(f"{name} {text!r} is not a whole number; fix the value") from None
    if value < minimum:
        raise BadValue(f"{name} {value} is below {minimum}; fix the value")
    return value


def parse_number(text: Any, *, name: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadValue(f"{name} {text!r} is not a number; fix the value") from None
    if not math.isfinite(value):
        raise BadValue(f"{name} {text!r} is not a finite number; fix the value")
    return value


def check_instance_type(text: Any) -> str:
    value = str(text).strip() if text is not None else ""
    if not _INSTANCE_TYPE.match(value):
        raise BadValue(
            f"instance type {text!r} is not an EC2 instance type; write one such as g5.xlarge"
        )
    return value


def require(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, or a :class:`BadValue` saying the key is missing."""
    if key not in record or record[key] is None:
        raise BadValue(f"the key {key!r} is missing; every record needs it")
    return record[key]
