"""Times given on the command line."""

from __future__ import annotations

from datetime import UTC, datetime

from oracle.errors import InputError


def parse_moment(
    text: str | None, *, option: str, example: str = "2026-03-01T00:00:00Z"
) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone); None stays None."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {text!r} is not a time: use ISO 8601, e.g. {example}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
