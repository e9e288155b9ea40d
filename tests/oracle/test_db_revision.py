"""ensure_schema reads the stored revision with one query and loads Alembic only when the
database is not at the newest migration file's revision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from oracle import db

CHILD = """
import json, sys
from oracle import db
engine = db.make_engine(sys.argv[1])
db.ensure_schema(engine)
print(json.dumps({"alembic": "alembic" in sys.modules, "revision": db.current_revision(engine)}))
"""


def ensure_schema_in_child(url: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, url],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_newest_revision_is_alembics_head(engine: sa.Engine) -> None:
    assert db.newest_revision() == db.head_revision(engine)


def test_a_current_database_needs_no_alembic(database_url: str) -> None:
    # The child imports alembic only afterwards, for current_revision: ensure_schema did not.
    assert ensure_schema_in_child(database_url) == {
        "alembic": False,
        "revision": db.newest_revision(),
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_empty_or_older_database_is_migrated(
    backend: str, empty_database: Callable[[str], str]
) -> None:
    url = empty_database(backend)
    assert ensure_schema_in_child(url)["revision"] == db.newest_revision()
    engine = db.make_engine(url)
    db.downgrade(engine, "-1")
    assert db.current_revision(engine) != db.newest_revision()
    engine.dispose()
    assert ensure_schema_in_child(url) == {"alembic": True, "revision": db.newest_revision()}
