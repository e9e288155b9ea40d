"""The one range of times the project accepts, and ISO 8601 parsing within it.

Every parser of a user's time (imported files, ``--observed-at``, ``--as-of``, ``--from``,
``--to``) goes through :func:`parse_utc`, so that a time such as ``9999-12-31T23:59:59-05:00``
(which overflows when converted to UTC) is refused with a message instead of an OverflowError.
The range covers every fact EC2 can have (its spot market opened in 2009) with room to plan
ahead; both databases store any time in it.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: The earliest time accepted (inclusive).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
#: The first time no longer accepted (exclusive).
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
RANGE_TEXT = "1970-01-01 to 2199-12-31 UTC"


class BadTime(ValueError):
    """A time that is not ISO 8601 or lies outside the supported range; the message says which
    (without naming the option or file, which the caller adds)."""


def parse_utc(text: str, *, example: str = "2026-03-01T00:00:00Z") -> datetime:
    """An ISO 8601 time as an aware UTC datetime within [EARLIEST, LATEST); a time without an
    offset is taken as UTC (as AWS writes them)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadTime(f"{shorten(text)} is not a time; write ISO 8601, e.g. {example}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return check_range(parsed, shown=text)


def check_range(moment: datetime, *, shown: str | None = None) -> datetime:
    """``moment`` (aware) in UTC, or :class:`BadTime` when it lies outside the range."""
    # Compared before converting: converting 9999-12-31T23:59:59-05:00 to UTC overflows.
    if not EARLIEST <= moment < LATEST:
        label = shorten(shown) if shown is not None else repr(moment.isoformat())
        raise BadTime(f"{label} is out of range; use a time from {RANGE_TEXT}")
    return moment.astimezone(UTC)


def shorten(text: object, limit: int = 60) -> str:
    """``repr`` of a value a user gave, cut to ``limit`` characters for a one-line message."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 5] + "...'"
