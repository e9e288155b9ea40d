"""Database locks: the worker lock (with several workers on one database, only the holder runs
jobs) and the apply lock (:mod:`scheduler.actuator.apply_lock`).

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated
connection for as long as the worker is active; it is released when that connection closes,
so a crashed worker frees it, and so does a lost connection: then
:meth:`DatabaseLock.still_held` answers False and drops the dead connection without using it
again, and a later :meth:`DatabaseLock.try_acquire` may take the lock anew on a fresh one.
SQLite (one host): an exclusive ``flock`` on a file beside the database, released by the
kernel when the process ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine


class DatabaseLock:
    """A lock shared by every process on one database, named by ``key`` (and, on SQLite, by
    ``name`` in the lock file's name). Not reentrant: a second holder in the same process is
    refused like one in another process."""

    def __init__(self, engine: Engine, *, key: int, name: str) -> None:
        self._engine = engine
        self._key = key
        self._name = name
        self._connection: Connection | None = None
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits. Raises the database's error when it
        cannot be reached (``sqlalchemy.exc.OperationalError``)."""
        if self.held:
            return True
        if self._engine.dialect.name == "postgresql":
            connection = self._engine.connect()
            try:
                got = connection.execute(
                    sa.select(sa.func.pg_try_advisory_lock(self._key))
                ).scalar()
                connection.commit()
            except BaseException:
                _discard(connection)
                raise
            if got:
                self._connection = connection
            else:
                connection.close()
            return bool(got)
        handle = self._lock_path().open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """False when the lock's connection was lost (then another worker may have taken it)."""
        if self._connection is None:
            return self._file is not None
        try:
            self._connection.execute(sa.select(1))
            self._connection.commit()
        except (sa.exc.SQLAlchemyError, OSError):
            # The connection is gone, and the server released the lock with it: unlocking
            # on it would only fail again (PendingRollbackError), so drop it unused.
            _discard(self._connection)
            self._connection = None
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(sa.select(sa.func.pg_advisory_unlock(self._key)))
                self._connection.commit()
            except (sa.exc.SQLAlchemyError, OSError):
                _discard(self._connection)  # the connection is gone, and the lock with it
            else:
                self._connection.close()
            finally:
                self._connection = None
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _lock_path(self) -> Path:
        database = self._engine.url.database or ""
        if not database or database == ":memory:":
            directory = Path(os.environ.get("TMPDIR", "/tmp"))
            return directory / f"scheduler-{self._name}-{self._key}.lock"
        return Path(database).expanduser().with_suffix(f".{self._name}.lock")


def _discard(connection: Connection) -> None:
    """Close a connection that failed, never to be handed out by the pool again."""
    try:
        connection.invalidate()
        connection.close()
    except (sa.exc.SQLAlchemyError, OSError):
        pass


class WorkerLock(DatabaseLock):
    """The worker lock: only its holder runs the scheduled jobs."""

    def __init__(self, engine: Engine, *, key: int) -> None:
        super().__init__(engine, key=key, name="worker")
