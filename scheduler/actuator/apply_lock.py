"""One apply at a time per service, across processes: the API's apply, `scheduler apply` and
the worker's rebalance all take this database lock (a PostgreSQL advisory lock; on SQLite a
file lock beside the database) and refuse to act while another process holds it."""

from __future__ import annotations

import zlib

from sqlalchemy.engine import Engine

from oracle.errors import InputError
from oracle.locks import DatabaseLock
from scheduler.errors import ConflictError


class ApplyInProgressError(InputError, ConflictError):
    """Another process is applying a plan to this service (exit code 2 on the command line, 409
    ``apply_in_progress`` from the API)."""

    code = "apply_in_progress"


def apply_lock(engine: Engine, service: str) -> DatabaseLock:
    """The apply lock of ``service`` (not yet taken: call ``try_acquire``)."""
    return DatabaseLock(
        engine, key=apply_lock_key(service), name=f"apply-{apply_lock_key(service)}"
    )


def apply_in_progress_message(service: str) -> str:
    return (
        f"another apply is running for service '{service}' (the API, `scheduler apply` or a "
        "rebalance); retry when it is done"
    )


def apply_lock_key(service: str) -> int:
    """A stable advisory-lock key per service (CRC-32 of its name, so every process agrees)."""
    return zlib.crc32(f"scheduler-apply:{service}".encode())
