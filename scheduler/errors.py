"""Errors a user can cause, with what each means to the command line and to the HTTP API.

A :class:`SchedulerError` carries its own HTTP status and code (the API answers
``{code, message}`` with that status) and its exit code (the command line prints the message on
one line and exits with it). The oracle's errors cannot derive from it (``oracle`` does not
import ``scheduler``), so :func:`classify` maps them here, by class, in one table.
"""

from __future__ import annotations

from oracle.errors import DatabaseError, InputError, OracleError


class SchedulerError(Exception):
    """A problem the user can fix; ``str(error)`` is one line that says how.

    Subclasses set ``http_status`` and ``code`` (the API's answer) and ``exit_code`` (the
    command line's); an instance may override the first two.
    """

    http_status: int = 400
    code: str = "bad_request"
    exit_code: int = 2

    def __init__(
        self, message: str, *, http_status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if http_status is not None:
            self.http_status = http_status
        if code is not None:
            self.code = code


class ConflictError(SchedulerError):
    """The request is valid but the state of the data or the fleet refuses it (409)."""

    http_status = 409
    code = "conflict"


class BusyError(SchedulerError):
    """The service is at its limit of concurrent work; retry after ``retry_after_s`` (503)."""

    http_status = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


#: The oracle's errors, most specific first: (class, HTTP status, code).
_ORACLE_ERRORS: tuple[tuple[type[OracleError], int, str], ...] = (
    (InputError, 422, "invalid_request"),
    (DatabaseError, 503, "database_unavailable"),
    (OracleError, 400, "bad_request"),
)


def classify(error: BaseException) -> tuple[int, str] | None:
    """(HTTP status, code) of an error the user can cause; ``None`` for anything else."""
    if isinstance(error, SchedulerError):
        return error.http_status, error.code
    for kind, status, code in _ORACLE_ERRORS:
        if isinstance(error, kind):
            return status, code
    return None
