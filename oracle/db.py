"""Engines, sessions and migrations.

The default database is a SQLite file in the data directory, created and migrated to the newest
schema on first use; PostgreSQL (psycopg 3) is the production database.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.orm import Session, sessionmaker

# Alembic is imported only where a migration runs or the history is read: a command on a
# database already at the newest revision needs none of it (see ensure_schema).


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir.expanduser() / 'scheduler.sqlite3'}"


#: The databases the project runs on (``oracle.models`` is tested on both).
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
#: Seconds a SQLite command waits for another process's write lock before it gives up.
SQLITE_BUSY_TIMEOUT_S = 30
URL_HELP = (
    "write sqlite:///PATH or postgresql+psycopg://USER@HOST/DB in [database] url "
    "(config.toml) or SCHEDULER_DATABASE_URL"
)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite it creates the parent directory and turns on WAL.

    A malformed URL, another kind of database, a missing driver or a parent directory that
    cannot be made raise :class:`DatabaseError` (one line that says how to fix it)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    parsed = _parse_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:"):
            _make_parent(Path(path).expanduser(), parsed)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ImportError, sa.exc.ArgumentError, TypeError, ValueError) as error:
        raise DatabaseError(
            f"cannot use the database URL {_shown(parsed)} ({_first_line(error)}); {URL_HELP}"
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _parse_url(url: str) -> sa.URL:
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise DatabaseError(f"the database URL {url[:80]!r} is malformed; {URL_HELP}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseError(
            f"the database URL {_shown(parsed)} names {backend!r}, which is not supported "
            f"(SQLite and PostgreSQL are); {URL_HELP}"
        )
    return parsed


def _make_parent(path: Path, url: sa.URL) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseError(
            f"cannot create the directory of the database file {_shown(url)} "
            f"({error.strerror}: {error.filename}); point the URL at a writable directory"
        ) from None


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # A read-only file cannot change its journal mode; pure reads still work.
    with contextlib.suppress(sqlite3.OperationalError):
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrations_dir() -> Path:
    """The ``migrations`` package, installed beside ``oracle``."""
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("the migrations package is missing: reinstall the project")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest). A database that is not ours,
    or is at a revision this version does not know, is refused untouched."""
    from alembic import command

    _check_ours(engine)
    _run_alembic(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    _run_alembic(engine, lambda cfg: command.downgrade(cfg, revision))


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with _connect(engine) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def ensure_schema(engine: Engine) -> None:
    """Migrate to the newest schema if the database is behind (cheap when it is current).

    One query reads the stored revision; when it is the newest migration file's, Alembic is
    not even imported (it costs a command about 0.3 s). Otherwise Alembic decides, as follows.

    Refused with :class:`DatabaseError`: a database at a revision this version does not know
    (made by a newer one), and a non-empty database that is not ours (tables but no
    ``alembic_version``), which is never written to."""
    newest = newest_revision()
    if newest is not None and _stored_revisions(engine) == {newest}:
        return
    if current_revision(engine) != head_revision(engine):
        upgrade(engine)


def _check_ours(engine: Engine) -> None:
    current = current_revision(engine)
    if current is None:
        foreign = _tables(engine)
        if foreign:
            shown = ", ".join(sorted(foreign)[:5]) + (", ..." if len(foreign) > 5 else "")
            raise DatabaseError(
                f"the database {_shown(engine.url)} holds tables of another application "
                f"({shown}) and no spot-scheduler schema; it is left untouched: point the URL "
                "at a new or spot-scheduler database"
            )
    elif not _known_revision(engine, current):
        raise DatabaseError(
            f"the database {_shown(engine.url)} is at revision {current!r}, which this version "
            "of spot-scheduler does not know (a newer version migrated it); upgrade "
            "spot-scheduler, or point the URL at another database"
        )


def _tables(engine: Engine) -> list[str]:
    with _connect(engine) as connection:
        names = sa.inspect(connection).get_table_names()
    return [name for name in names if name != "alembic_version"]


def _known_revision(engine: Engine, revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(alembic_config(engine))
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


@functools.cache
def newest_revision() -> str | None:
    """The head revision of the migration files, read from their ``revision`` and
    ``down_revision`` assignments without Alembic; None unless there is exactly one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        values = _assignments(path, ("revision", "down_revision"))
        revision, down = values.get("revision"), values.get("down_revision")
        if isinstance(revision, str):
            revisions.add(revision)
        parents.update([down] if isinstance(down, str) else down or ())
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _assignments(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The literal values assigned to ``names`` at the top of the Python file ``path``."""
    values: dict[str, Any] = {}
    for node in ast.parse(path.read_text()).body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            values[target.id] = ast.literal_eval(value)
    return values


def _stored_revisions(engine: Engine) -> set[str] | None:
    """The revisions in ``alembic_version`` (one query), or None when it cannot be read (no
    table yet: Alembic then creates it, or names the problem)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return {str(row[0]) for row in rows}
    except sa.exc.DBAPIError:
        return None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # The ORM is imported here: a command that only reads (a plan) queries the Core tables of
    # oracle.tables through a connection and does without it.
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One session and one transaction: committed on success, rolled back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def _run_alembic(engine: Engine, action: Any) -> None:
    from alembic.util import CommandError

    config = alembic_config(engine)
    try:
        action(config)
    except CommandError as error:
        raise DatabaseError(
            f"cannot migrate {_shown(engine.url)}: {_first_line(error)}; `scheduler db current` "
            "shows the database's revision and the newest (use head, base or a revision id)"
        ) from None
    except sa.exc.DBAPIError as error:
        raise DatabaseError(describe(error, engine.url)) from error


@contextmanager
def _connect(engine: Engine) -> Iterator[sa.Connection]:
    try:
        with engine.connect() as connection:
            yield connection
    except sa.exc.DBAPIError as error:
        raise DatabaseError(describe(error, engine.url)) from error


def describe(error: sa.exc.DBAPIError, url: sa.URL | None = None) -> str:
    """One line for a database error a user can meet (locked, not a database, read-only,
    unreachable, connection lost), with how to deal with it."""
    reason = _first_line(error.orig) if error.orig is not None else _first_line(error)
    where = f"the database {_shown(url)}" if url is not None else "the database"
    lowered = reason.lower()
    if "database is locked" in lowered or "database table is locked" in lowered:
        return (
            f"{where} is locked by another process (waited {SQLITE_BUSY_TIMEOUT_S} s); "
            "nothing was written: retry when it is done"
        )
    if "file is not a database" in lowered or "malformed" in lowered:
        return (
            f"{where} is not a SQLite database or is damaged ({reason}); point [database] url "
            "or SCHEDULER_DATABASE_URL at a spot-scheduler database, or at a new file"
        )
    if "readonly database" in lowered or "read-only" in lowered:
        return (
            f"{where} is read-only ({reason}); this command writes to it: use a writable copy, "
            "or a command that only reads"
        )
    if "connection refused" in lowered or "could not translate host" in lowered:
        return (
            f"cannot reach {where.removeprefix('the ')} ({reason}); start the server, or point "
            f"[database] url in config.toml or {URL_ENV} at one that is reachable"
        )
    if error.connection_invalidated or _lost(lowered):
        return (
            f"the connection to {where.removeprefix('the ')} was lost ({reason}); the "
            "transaction was rolled back, nothing was written: retry when it is reachable"
        )
    return f"cannot use {where}: {reason}; check [database] url in config.toml or {URL_ENV}"


URL_ENV = "SCHEDULER_DATABASE_URL"
_LOST = (
    "server closed the connection",
    "terminating connection",
    "consuming input failed",
    "connection is closed",
    "the connection is lost",
    "ssl connection has been closed",
    "connection reset",
    "broken pipe",
    "eof detected",
)


def _lost(reason: str) -> bool:
    return any(marker in reason for marker in _LOST)
