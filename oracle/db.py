"""Engines, sessions and migrations.

The default database is a SQLite file in the data directory, created and migrated to the newest
schema on first use; PostgreSQL (psycopg 3) is the production database.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from oracle.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Alembic is imported only where a migration runs or the history is read: a command on a
# database already at the newest revision needs none of it (see ensure_schema).


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir.expanduser() / 'scheduler.sqlite3'}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite it creates the parent directory and turns on WAL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
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
    """Migrate the database to ``revision`` (default: the newest)."""
    from alembic import command

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
    not even imported (it costs a command about 0.3 s). Otherwise Alembic decides and migrates.
    """
    newest = newest_revision()
    if newest is not None and _stored_revisions(engine) == {newest}:
        return
    if current_revision(engine) != head_revision(engine):
        upgrade(engine)


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
    except DBAPIError:
        return None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One session and one transaction: committed on success, rolled back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def _run_alembic(engine: Engine, action: Any) -> None:
    config = alembic_config(engine)
    try:
        action(config)
    except OperationalError as error:
        raise DatabaseError(_describe(engine, error)) from error


@contextmanager
def _connect(engine: Engine) -> Iterator[sa.Connection]:
    try:
        with engine.connect() as connection:
            yield connection
    except OperationalError as error:
        raise DatabaseError(_describe(engine, error)) from error


def _describe(engine: Engine, error: OperationalError) -> str:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    url = engine.url.render_as_string(hide_password=True)
    return (
        f"cannot use the database {url}: {reason}; check [database] url in config.toml "
        "or SCHEDULER_DATABASE_URL"
    )
