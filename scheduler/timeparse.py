"""Times given on the command line (``--as-of``, ``--observed-at``, ``--from``, ``--to``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from oracle.errors import InputError
from oracle.timerange import BadTime, parse_utc


def parse_moment(
    text: str | None, *, option: str, example: str = "2026-03-01T00:00:00Z"
) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime within the supported range (UTC when it names
    no zone); None stays None. A bad time raises :class:`InputError` naming ``option``."""
    if text is None:
        return None
    try:
        return parse_utc(text, example=example)
    except BadTime as error:
        raise InputError(f"{option} {error}") from None


def format_age(age: timedelta | None) -> str:
    """A short human age: 45s, 12m, 3.5h, 4.2d."""
    if age is None:
        return "-"
    seconds = age.total_seconds()
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
