"""Shared fixtures: the real data files, and fresh migrated databases on SQLite and PostgreSQL.

PostgreSQL is at 127.0.0.1:5432 (trust auth, user postgres, database ``test``), or at
$SCHEDULER_TEST_POSTGRES_URL. Each test gets its own database, cloned from a migrated template.
When CI=true a test that needs PostgreSQL fails if it cannot connect; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle import db

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "SCHEDULER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server in this process, on a free port of 127.0.0.1 (its state is shared: reset
    it before use)."""
    from moto.server import ThreadedMotoServer  # only the tests that talk to AWS need moto

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository root (never copied into the tree)."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not (path / "SOURCES.md").is_file():
        pytest.fail(f"the shared data directory is missing: expected it at {path}")
    return path


def _postgres_admin() -> Engine:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {error.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return engine


def _database_url(name: str) -> str:
    return sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Migrated template databases, made once per test session (and worker)."""
    made: dict[str, str] = {}
    sqlite_path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = db.make_engine(f"sqlite:///{sqlite_path}")
    db.upgrade(engine)
    engine.dispose()
    made["sqlite"] = str(sqlite_path)
    yield made
    if "postgresql" in made:
        admin = _postgres_admin()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{made["postgresql"]}"'))
        admin.dispose()


def _postgres_template(templates: dict[str, str]) -> str:
    if "postgresql" not in templates:
        name = f"sched_tmpl_{uuid.uuid4().hex[:12]}"
        admin = _postgres_admin()
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        engine = db.make_engine(_database_url(name))
        db.upgrade(engine)
        engine.dispose()
        templates["postgresql"] = name
    return templates["postgresql"]


@pytest.fixture
def make_database(_templates: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh migrated databases: ``make_database("sqlite") -> url``."""
    dropped: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path / f"db-{uuid.uuid4().hex[:8]}.sqlite3"
            shutil.copyfile(_templates["sqlite"], path)
            return f"sqlite:///{path}"
        template = _postgres_template(_templates)
        name = f"sched_test_{uuid.uuid4().hex[:12]}"
        admin = _postgres_admin()
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        admin.dispose()
        dropped.append(name)
        return _database_url(name)

    yield make
    if dropped:
        admin = _postgres_admin()
        with admin.connect() as connection:
            for name in dropped:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory of empty (unmigrated) databases."""
    dropped: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'empty-{uuid.uuid4().hex[:8]}.sqlite3'}"
        name = f"sched_empty_{uuid.uuid4().hex[:12]}"
        admin = _postgres_admin()
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        dropped.append(name)
        return _database_url(name)

    yield make
    if dropped:
        admin = _postgres_admin()
        with admin.connect() as connection:
            for name in dropped:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, make_database: Callable[[str], str]) -> str:
    """A fresh migrated database on each backend."""
    return make_database(backend)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()
