"""What every file format shares: the rows of one file, where an error is, value parsers.

A format's loader turns a file into a :class:`Batch` (rows per table). Delimited files are read
as a stream (:class:`Table`), and during an import the batch hands every full chunk of rows to
the service's sink, which writes it in the command's one transaction: memory stays bounded
whatever the file's size, and a bad row anywhere rolls every chunk back. Without a sink (a
loader called on its own) the batch keeps all its rows. Loaders report a bad value by raising
:class:`BadValue` inside ``context.at(where)``, which names the file and line (or, in JSON, the
key) in the :class:`~oracle.errors.InputError` the user sees.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, NoReturn

from oracle.errors import InputError
from oracle.importers.zones import ZoneDirectory, ZoneError
from oracle.models import Base
from oracle.timerange import BadTime, check_range, parse_utc, shorten

#: How the observed_at of a snapshot file was chosen.
OBSERVED_FROM_OPTION = "--observed-at"
OBSERVED_FROM_MTIME = "file modification time"

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
#: The instance_type columns are VARCHAR(64).
MAX_INSTANCE_TYPE_CHARS = 64
#: The highest hourly price accepted. The dearest EC2 instances (the high-memory u7i types)
#: list at a few hundred dollars an hour on demand; ten thousand leaves room for any real
#: price and refuses absurd ones such as 1e308.
MAX_PRICE_USD_PER_HOUR = 10_000.0
#: The largest whole number accepted (the integer columns are 32-bit on PostgreSQL).
MAX_INT = 2**31 - 1
#: The longest line of a delimited file: a bound on memory whatever the file holds. The csv
#: module's own limit of 131,072 characters per field applies within it.
MAX_LINE_CHARS = 1 << 20
#: Rows of one table kept before they are handed to the sink: the bulk insert's chunk
#: (``oracle.store.BULK_CHUNK_ROWS``), so streaming costs the write path nothing.
CHUNK_ROWS = 50_000

#: Where a batch hands full chunks: (table, rows) -> rows inserted.
Sink = Callable[[type[Base], list[dict[str, Any]]], int]


class BadValue(ValueError):
    """A value that cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Batch:
    """The rows one file yields, per table: kept until written (all of them without a sink)."""

    rows_read: int = 0
    rows: dict[type[Base], list[dict[str, Any]]] = field(default_factory=dict)
    #: The snapshot time of the file's facts (None: each record has its own timestamp).
    observed_at: datetime | None = None
    observed_at_from: str | None = None
    notes: list[str] = field(default_factory=list)
    regions: set[str] = field(default_factory=set)
    #: Where full chunks go during an import (None: keep every row in ``rows``).
    sink: Sink | None = field(default=None, repr=False)
    #: Rows the sink inserted so far, per table.
    inserted: dict[type[Base], int] = field(default_factory=dict)

    def add(self, model: type[Base], row: dict[str, Any]) -> None:
        rows = self.rows.setdefault(model, [])
        rows.append(row)
        if self.sink is not None and len(rows) >= CHUNK_ROWS:
            self._flush(model)

    def expect(self, *models: type[Base]) -> None:
        """Report these tables even when the file yields no row for them."""
        for model in models:
            self.rows.setdefault(model, [])

    def finish(self, sink: Sink | None = None) -> dict[type[Base], int]:
        """Hand what is left to the sink (this batch's, else ``sink``: a loader may have made
        its batch without one); the rows inserted per table."""
        self.sink = self.sink or sink
        for model in list(self.rows):
            self._flush(model)
        return self.inserted

    def _flush(self, model: type[Base]) -> None:
        assert self.sink is not None, "a batch is written through a sink"
        rows = self.rows[model]
        self.inserted[model] = self.inserted.get(model, 0) + (self.sink(model, rows) if rows else 0)
        self.rows[model] = []


@dataclass
class FileContext:
    """One file being imported, and what its loader may consult."""

    path: Path
    zones: ZoneDirectory
    observed_at: datetime | None = None
    region: str | None = None
    #: Set by the service once the file's ingest run exists (spot rows point at it).
    ingest_run_id: int | None = None
    #: Set by the service: where the file's batch writes its chunks.
    sink: Sink | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return str(self.path)

    @cached_property
    def source_detail(self) -> str:
        return str(self.path)[-512:]

    def batch(self) -> Batch:
        """The file's batch, writing through the service's sink when there is one."""
        return Batch(sink=self.sink)

    def fail(self, where: str | int | None, message: str) -> NoReturn:
        location = f"{self.label}:{where}" if where is not None else self.label
        raise InputError(f"{location}: {message}")

    @contextmanager
    def at(self, where: str | int) -> Iterator[None]:
        """Turn a :class:`BadValue` or zone error raised inside into an error naming ``where``;
        so too the errors of a JSON value of the wrong shape (a list where an object belongs)."""
        try:
            yield
        except (BadValue, ZoneError) as error:
            self.fail(where, str(error))
        except (AttributeError, TypeError, KeyError, IndexError) as error:
            self.fail(
                where,
                f"a value of the wrong shape ({type(error).__name__}: {error}); fix the entry",
            )

    def snapshot_time(self, batch: Batch) -> datetime:
        """The time a snapshot file's facts were true: ``--observed-at``, else the file's
        modification time (recorded on the batch, so the output says which)."""
        if self.observed_at is not None:
            batch.observed_at, batch.observed_at_from = self.observed_at, OBSERVED_FROM_OPTION
        else:
            batch.observed_at, batch.observed_at_from = self._mtime(), OBSERVED_FROM_MTIME
        return batch.observed_at

    def _mtime(self) -> datetime:
        try:
            return check_range(datetime.fromtimestamp(self.path.stat().st_mtime, tz=UTC))
        except (BadTime, OverflowError, OSError, ValueError):
            self.fail(
                None,
                "the file's modification time is out of range; pass --observed-at with the "
                "time its facts were true",
            )


@dataclass
class Table:
    """A delimited text file, read as a stream: normalised column names, then data rows with
    their line numbers (read when :meth:`records` is iterated, one line at a time)."""

    path: Path
    delimiter: str
    columns: list[str]
    #: The line of the header (blank lines before it are skipped).
    header_line: int = 1

    def records(self, context: FileContext) -> Iterator[tuple[int, dict[str, str]]]:
        with closing(bounded_lines(self.path, context)) as lines:
            yield from self._rows(lines, context)

    def _rows(
        self, lines: Iterator[str], context: FileContext
    ) -> Iterator[tuple[int, dict[str, str]]]:
        width = len(self.columns)
        for _ in range(self.header_line):
            next(lines, None)
        reader = csv.reader(lines, delimiter=self.delimiter)
        while True:
            try:
                fields = next(reader, None)
            except csv.Error as error:
                context.fail(
                    self.header_line + reader.line_num,
                    f"not a well-formed {_NAMES[self.delimiter]} row ({error}); fix the row",
                )
            if fields is None:
                return
            line = self.header_line + reader.line_num
            if not fields or not "".join(fields).strip():
                continue  # a blank line
            if len(fields) != width:
                context.fail(
                    line,
                    f"expected {width} fields ({self.delimiter!r}-separated), "
                    f"found {len(fields)}; fix the row or remove it",
                )
            values = zip(self.columns, fields, strict=True)
            yield line, {name: value.strip() for name, value in values}


_NAMES = {",": "CSV", "\t": "TSV"}


def bounded_lines(path: Path, context: FileContext) -> Generator[str]:
    """The lines of the file as text, each at most :data:`MAX_LINE_CHARS` bytes long (else the
    file's error names the line); a line that is not UTF-8 is an error naming it too. A byte
    order mark at the start is skipped."""
    with path.open("rb") as handle:
        number = 1
        while line := handle.readline(MAX_LINE_CHARS):
            if len(line) == MAX_LINE_CHARS and not line.endswith(b"\n"):
                context.fail(
                    number,
                    f"a line longer than {MAX_LINE_CHARS:,} bytes; is this a CSV/TSV file?",
                )
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                context.fail(number, "not UTF-8 text (a binary or compressed file?); fix the file")
            number += 1


#: A format's loader: (file, parsed payload) -> rows per table.
Loader = Callable[[FileContext, Any], Batch]


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime within the supported range
    (:mod:`oracle.timerange`); one without an offset is taken as UTC (as AWS writes them)."""
    try:
        return parse_utc(str(text), example="2021-03-02T01:45:29+00:00")
    except BadTime as error:
        raise BadValue(f"timestamp {error}") from None


def parse_price(text: Any, *, name: str = "price") -> float:
    """A price in USD per hour: a finite number from 0 to :data:`MAX_PRICE_USD_PER_HOUR`."""
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise BadValue(
            f"{name} {shorten(text)} is not a number; write US dollars per hour, e.g. 0.5260"
        ) from None
    if not math.isfinite(value) or not 0 <= value <= MAX_PRICE_USD_PER_HOUR:
        raise BadValue(
            f"{name} {shorten(text)} is not a price; write a number of dollars per hour from 0 "
            f"to {MAX_PRICE_USD_PER_HOUR:,.0f}"
        )
    return value


def parse_int(text: Any, *, name: str, minimum: int = 0) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise BadValue(f"{name} {shorten(text)} is not a whole number; fix the value") from None
    if value < minimum:
        raise BadValue(f"{name} {shorten(text)} is below {minimum}; fix the value")
    if value > MAX_INT:
        raise BadValue(f"{name} {shorten(text)} is above {MAX_INT:,}; fix the value")
    return value


def parse_number(text: Any, *, name: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise BadValue(f"{name} {shorten(text)} is not a number; fix the value") from None
    if not math.isfinite(value):
        raise BadValue(f"{name} {shorten(text)} is not a finite number; fix the value")
    return value


def check_instance_type(text: Any) -> str:
    value = str(text).strip() if text is not None else ""
    if not _is_instance_type(value):
        raise BadValue(
            f"instance type {shorten(text)} is not an EC2 instance type; "
            "write one such as g5.xlarge"
        )
    return value


@lru_cache(maxsize=4096)
def _is_instance_type(value: str) -> bool:
    # Cached: a file names a few dozen types over millions of rows.
    return len(value) <= MAX_INSTANCE_TYPE_CHARS and _INSTANCE_TYPE.match(value) is not None


def require(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, or a :class:`BadValue` saying the key is missing."""
    if key not in record or record[key] is None:
        raise BadValue(f"the key {key!r} is missing; every record needs it")
    return record[key]


def check_text(text: Any, *, name: str, max_chars: int) -> str:
    """A free-text value stripped, at most ``max_chars`` long (the column's length)."""
    value = str(text).strip()
    if len(value) > max_chars:
        raise BadValue(
            f"{name} {shorten(value)} is longer than {max_chars} characters; fix the value"
        )
    return value
