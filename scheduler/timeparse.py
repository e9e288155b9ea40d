"""Times given on the command line (``--as-of``, ``--observed-at``, ``--from``, ``--to``)."""

from __future__ import annotations

from datetime import datetime

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
