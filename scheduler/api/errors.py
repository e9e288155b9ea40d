"""The API's error boundary: every error is JSON ``{code, message}``.

Errors a user can cause (:class:`scheduler.errors.SchedulerError`, the oracle's errors, request
validation, unknown routes, a body over the limit) answer 4xx with their own status and code; a
busy planner answers 503 with ``Retry-After``; a database that cannot be reached answers 503.
Anything else is a bug: it answers 500 ``{code: "internal", message, request_id}`` and is
logged with its traceback under the same request id.
"""

from __future__ import annotations

import logging
import math
import uuid

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oracle.errors import OracleError
from scheduler.errors import BusyError, SchedulerError, classify

log = logging.getLogger("scheduler.api")

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


#: Validation errors named in one message.
_MAX_REPORTED = 4


class ApiError(SchedulerError):
    """An error the HTTP layer itself raises (auth, a missing plan, a refused apply)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, http_status=status, code=code)

    @property
    def status(self) -> int:
        return self.http_status


def install(app: FastAPI) -> None:
    app.add_exception_handler(SchedulerError, _known_error)
    app.add_exception_handler(OracleError, _known_error)
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(sa.exc.OperationalError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal)


def error_body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


async def _known_error(_request: Request, error: Exception) -> JSONResponse:
    status, code = classify(error) or (400, "bad_request")
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, BusyError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    message = str(error).splitlines()[0] if str(error) else code
    return JSONResponse(error_body(code, message), status, headers=headers or None)


async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
    """One line naming each wrong field (the first few) and what it must be."""
    parts = []
    for item in error.errors()[:_MAX_REPORTED]:
        where = ".".join(str(part) for part in item.get("loc", ()))
        what = str(item.get("msg", "invalid")).replace("\n", " ").removeprefix("Value error, ")
        parts.append(f"{where}: {what}" if where else what)
    more = len(error.errors()) - _MAX_REPORTED
    message = "; ".join(parts) or "invalid request"
    if more > 0:
        message += f" (and {more} more)"
    return JSONResponse(error_body("invalid_request", message), 422)


async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(error.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(error.detail)), error.status_code, headers=error.headers
    )


async def _database_down(request: Request, error: sa.exc.OperationalError) -> JSONResponse:
    request_id = uuid.uuid4().hex
    log.warning("request %s %s: database unavailable: %s", request_id, request.url.path, error)
    return JSONResponse(
        {
            **error_body("database_unavailable", "the database cannot be reached; retry later"),
            "request_id": request_id,
        },
        503,
        headers={"Retry-After": "5"},
    )


async def _internal(request: Request, error: Exception) -> JSONResponse:
    request_id = uuid.uuid4().hex
    log.error(
        "request %s %s %s failed", request_id, request.method, request.url.path, exc_info=error
    )
    body = {
        **error_body("internal", f"internal error ({type(error).__name__}); quote {request_id}"),
        "request_id": request_id,
    }
    return JSONResponse(body, 500, headers={"X-Request-ID": request_id})
