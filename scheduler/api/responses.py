"""The error answers each route documents in the OpenAPI schema (all ``{code, message}``)."""

from __future__ import annotations

from typing import Any

from scheduler.api.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "Malformed request: a body that cannot be read as JSON text",
    401: "Missing or wrong bearer token",
    403: "The endpoint needs a token and none is configured",
    404: "No such resource",
    409: "Refused by the state of the data or the fleet (no plan meets the SLO; an apply is "
    "already running)",
    413: "Request body over service.max_body_bytes",
    422: "Invalid request: the message names the field and what it must be",
    429: "Too many waiting requests",
    500: "Internal error, with a request_id to quote",
    503: "Busy (uncached plans at their limit) or the database unreachable; see Retry-After",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer ``statuses`` (400, 422 and 500 always)."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in sorted({*statuses, 400, 422, 500})
    }
