"""The command line's error boundary, class by class: exit code 2, one line on stderr naming the
problem, no traceback, and the database unchanged.

The commands run in this process through :func:`scheduler.cli.boundary.run` (what the
``scheduler`` entry point runs), so that a case costs no interpreter start; one test runs the
real entry point in a subprocess. Classes about the database run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from oracle import db
from oracle.importers import base as importer_base
from scheduler.cli import boundary
from scheduler.cli.main import app
from scheduler.errors import ConflictError
from tests.oracle.importers.helpers import row_counts
from tests.scheduler.cli.tcp_proxy import cutting_proxy

HEADER = "timestamp,availability_zone,instance_type,product_description,spot_price\n"
ROW = "2021-03-02T01:45:29+00:00,us-east-1a,g4dn.xlarge,Linux/UNIX,0.1578\n"
FAR_FUTURE = "9999-12-31T23:59:59-05:00"
FAR_PAST = "0001-01-01T00:00:00+05:00"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*args)`` -> (exit code, stdout, stderr) of one command."""

    def invoke(*args: str) -> tuple[int, str, str]:
        code = boundary.run(app, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def assert_one_line_error(result: tuple[int, str, str], *fragments: str) -> str:
    code, _, err = result
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def counts(url: str) -> dict[str, int]:
    engine = db.make_engine(url)
    try:
        return row_counts(engine)
    finally:
        engine.dispose()


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def csv(directory: Path, text: str) -> str:
    return write(directory / "a.csv", text)


def fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


#: name -> (arguments, given the test's directory; fragments of the one-line error)
INPUT_CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "--observed-at far in the future with an offset": (
        lambda d: ["oracle", "import", "--observed-at", FAR_FUTURE, csv(d, HEADER + ROW)],
        (f"--observed-at '{FAR_FUTURE}' is out of range; use a time from 1970-01-01",),
    ),
    "--as-of of oracle stats far in the future": (
        lambda d: ["oracle", "stats", "--as-of", FAR_FUTURE],
        (f"--as-of '{FAR_FUTURE}' is out of range",),
    ),
    "--as-of of plan far in the past": (
        lambda d: ["plan", "--slo", "500tok/s", "--as-of", FAR_PAST],
        (f"--as-of '{FAR_PAST}' is out of range",),
    ),
    "a timestamp far in the future in a file": (
        lambda d: ["oracle", "import", csv(d, HEADER + ROW.replace(ROW[:25], FAR_FUTURE))],
        ("a.csv:2: timestamp '9999-12-31T23:59:59-05:00' is out of range",),
    ),
    "--observed-at far in the past with an offset": (
        lambda d: ["oracle", "import", "--observed-at", FAR_PAST, csv(d, HEADER + ROW)],
        (f"--observed-at '{FAR_PAST}' is out of range; use a time from 1970-01-01",),
    ),
    "--as-of of oracle stats far in the past": (
        lambda d: ["oracle", "stats", "--as-of", FAR_PAST],
        (f"--as-of '{FAR_PAST}' is out of range",),
    ),
    "--as-of of plan far in the future": (
        lambda d: ["plan", "--slo", "500tok/s", "--as-of", FAR_FUTURE],
        (f"--as-of '{FAR_FUTURE}' is out of range",),
    ),
    "a timestamp far in the past in a file": (
        lambda d: ["oracle", "import", csv(d, HEADER + ROW + ROW.replace(ROW[:25], FAR_PAST))],
        (f"a.csv:3: timestamp '{FAR_PAST}' is out of range",),
    ),
    "a CSV field over the csv module's limit": (
        lambda d: ["oracle", "import", csv(d, HEADER + ROW + ROW.replace("Linux", "L" * 200_000))],
        ("a.csv:3: not a well-formed CSV row (field larger than field limit (131072))",),
    ),
    "a CSV header field over the csv module's limit": (
        lambda d: ["oracle", "import", csv(d, HEADER.replace("spot_price", "p" * 200_000) + ROW)],
        ("a.csv:1: not a well-formed header (field larger than field limit",),
    ),
    "JSON nested 100k levels deep": (
        lambda d: ["oracle", "import", write(d / "a.json", "[" * 100_000 + "]" * 100_000)],
        ("a.json: JSON nested too deeply",),
    ),
    "a spot price of 1e308 in a file": (
        lambda d: ["oracle", "import", csv(d, HEADER + ROW.replace("0.1578", "1e308"))],
        ("a.csv:2: spot price '1e308' is not a price",),
    ),
    "a FIFO given as an import file": (
        lambda d: ["oracle", "import", fifo(d / "pipe.csv")],
        ("pipe.csv: not a regular file (a FIFO, socket or device)",),
    ),
    "--headroom nan": (
        lambda d: ["plan", "--slo", "500tok/s", "--headroom", "nan"],
        ("Invalid value for '--headroom': nan is not a finite number",),
    ),
    "--headroom inf": (
        lambda d: ["plan", "--slo", "500tok/s", "--headroom", "inf"],
        ("Invalid value for '--headroom': inf is not a finite number",),
    ),
    "--budget nan": (
        lambda d: ["plan", "--slo", "500tok/s", "--budget", "nan"],
        ("Invalid value for '--budget': nan is not a finite number",),
    ),
    "--budget inf": (
        lambda d: ["plan", "--slo", "500tok/s", "--budget", "inf"],
        ("Invalid value for '--budget': inf is not a finite number",),
    ),
    "--budget absurd": (
        lambda d: ["plan", "--slo", "500tok/s", "--budget", "1e300"],
        ("--budget 1e+300: write 0 (none) or USD per hour up to 10,000,000",),
    ),
}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", sorted(INPUT_CASES))
def test_bad_input_is_one_line_and_writes_nothing(
    run: Run, cli_env: dict[str, str], tmp_path: Path, case: str
) -> None:
    arguments, fragments = INPUT_CASES[case]
    url = cli_env["SCHEDULER_DATABASE_URL"]
    before = counts(url)

    assert_one_line_error(run(*arguments(tmp_path)), *fragments)

    assert counts(url) == before


#: name -> (config file content, fragments of the one-line error)
CONFIG_CASES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "budget_usd_per_hour = inf": (
        b"[planner]\nbudget_usd_per_hour = inf\n",
        ("key 'planner.budget_usd_per_hour': Input should be a finite number (got inf)",),
    ),
    "a nan elsewhere": (
        b"[jobs]\njitter_s = nan\n",
        ("key 'jobs.jitter_s': Input should be a finite number",),
    ),
    "headroom above its bound": (
        b"[planner]\nheadroom_fraction = 1e300\n",
        ("key 'planner.headroom_fraction': Input should be less than or equal to 10",),
    ),
    "not UTF-8": (b"[planner]\nmodel = '\xff\xfe'\n", ("is not UTF-8 text",)),
}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_file_is_one_line(
    run: Run, cli_env: dict[str, str], tmp_path: Path, case: str
) -> None:
    content, fragments = CONFIG_CASES[case]
    config = tmp_path / "bad.toml"
    config.write_bytes(content)

    assert_one_line_error(run("--config", str(config), "oracle", "stats"), str(config), *fragments)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_config_env_naming_a_directory_is_one_line(
    run: Run, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULER_CONFIG", str(tmp_path))

    assert_one_line_error(run("oracle", "stats"), f"{tmp_path}: is a directory, not a config file")


#: name -> (database URL given the test's directory, fragments of the one-line error)
URL_CASES: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "malformed": (lambda d: "postgresql+psycopg://[::1", ("is malformed; write sqlite:///PATH",)),
    "not a URL": (lambda d: "just-a-name", ("'just-a-name' is malformed",)),
    "unsupported dialect": (
        lambda d: "mysql://user@localhost/db",
        ("names 'mysql', which is not supported (SQLite and PostgreSQL are)",),
    ),
    "unknown dialect": (lambda d: "foo://x", ("names 'foo', which is not supported",)),
    "a SQLite file under a regular file": (
        lambda d: f"sqlite:///{write(d / 'plain', 'x')}/db.sqlite3",
        ("cannot create the directory of the database file", "point the URL at a writable"),
    ),
    "a SQLite path that is a directory": (
        lambda d: f"sqlite:///{d}",
        ("cannot use the database", "unable to open database file"),
    ),
    "a file that is not SQLite": (
        lambda d: f"sqlite:///{write(d / 'notes.txt', 'hello, this is text ' * 400)}",
        ("is not a SQLite database or is damaged (file is not a database)",),
    ),
}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", sorted(URL_CASES))
def test_bad_database_url_or_file_is_one_line(
    run: Run, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    url, fragments = URL_CASES[case]
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", url(tmp_path))

    assert_one_line_error(run("oracle", "stats"), *fragments)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_truncated_database_file_is_one_line_and_left_alone(
    run: Run, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = Path(sa.engine.make_url(cli_env["SCHEDULER_DATABASE_URL"]).database or "")
    truncated = tmp_path / "truncated.sqlite3"
    truncated.write_bytes(whole.read_bytes()[:12_288])
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", f"sqlite:///{truncated}")

    assert_one_line_error(run("oracle", "stats"), "is not a SQLite database or is damaged")

    assert truncated.stat().st_size == 12_288


def test_unknown_migration_revision_is_one_line(run: Run, cli_env: dict[str, str]) -> None:
    url = cli_env["SCHEDULER_DATABASE_URL"]
    before = _revision(url)

    line = assert_one_line_error(run("db", "upgrade", "--revision", "bogus"))

    assert "Can't locate revision identified by 'bogus'" in line
    assert "`scheduler db current`" in line
    assert _revision(url) == before


def test_a_database_at_a_newer_revision_is_refused_untouched(
    run: Run, cli_env: dict[str, str]
) -> None:
    url = cli_env["SCHEDULER_DATABASE_URL"]
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff0000ffff'"))
    engine.dispose()
    before = counts(url)

    assert_one_line_error(
        run("oracle", "stats"),
        "is at revision 'ffff0000ffff', which this version of spot-scheduler does not know",
    )

    assert _revision(url) == "ffff0000ffff"
    assert counts(url) == before


def test_another_applications_database_gets_none_of_our_tables(
    run: Run,
    cli_env: dict[str, str],
    backend: str,
    empty_database: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = empty_database(backend)
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
        connection.execute(sa.text("INSERT INTO customers VALUES (1, 'Ada')"))
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", url)

    for command in (["oracle", "stats"], ["db", "upgrade"]):
        assert_one_line_error(
            run(*command), "holds tables of another application (customers)", "untouched"
        )

    with engine.connect() as connection:
        assert sa.inspect(connection).get_table_names() == ["customers"]
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_database_locked_past_the_busy_timeout_is_one_line(
    run: Run, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = cli_env["SCHEDULER_DATABASE_URL"]
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(sa.engine.make_url(url).database or "")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run("oracle", "import", write(tmp_path / "a.csv", HEADER + ROW))
    finally:
        holder.rollback()
        holder.close()

    assert_one_line_error(result, "is locked by another process (waited 0.2 s)", "retry")
    assert counts(url)["spot_prices"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_read_only_database_allows_reads_and_refuses_writes_in_one_line(
    run: Run, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = csv(tmp_path, HEADER + ROW)
    assert run("oracle", "import", history)[0] == 0
    path = sa.engine.make_url(cli_env["SCHEDULER_DATABASE_URL"]).database
    # How SQLite opens a file it may not write (file permissions do not bind root).
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", f"sqlite:///file:{path}?mode=ro&uri=true")

    code, out, err = run("oracle", "stats", "--format", "json", "--as-of", "2021-03-03")
    assert (code, err) == (0, "")
    assert '"instance_type": "g4dn.xlarge"' in out

    assert_one_line_error(run("oracle", "import", history), "is read-only", "only reads")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_connection_cut_mid_import_is_one_line_and_writes_nothing(
    run: Run, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = cli_env["SCHEDULER_DATABASE_URL"]
    before = counts(url)
    rows = [
        f"2021-03-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,"
        f"us-east-1{'abcd'[i % 4]},g5.xlarge,Linux/UNIX,0.{1000 + i % 9000}\n"
        for i in range(24_000)
    ]
    history = write(tmp_path / "history.csv", HEADER + "".join(rows))
    # Chunks of 5,000 rows (each a COPY of ~0.8 MB): the cut falls in the third, after two
    # chunks went into the open transaction.
    monkeypatch.setattr(importer_base, "CHUNK_ROWS", 5000)
    parsed = sa.engine.make_url(url)
    target = (parsed.host or "127.0.0.1", parsed.port or 5432)
    with cutting_proxy(target, cut_after_bytes=2_000_000) as proxy:
        proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        monkeypatch.setenv("SCHEDULER_DATABASE_URL", proxied)
        result = run("oracle", "import", history)

    assert proxy.cuts == 1
    assert_one_line_error(result, "the connection to", "was lost", "nothing was written")
    assert counts(url) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_entry_point_prints_one_line_without_a_traceback(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    scheduler = str(Path(sys.executable).parent / "scheduler")
    done = subprocess.run(
        [scheduler, "oracle", "stats", "--as-of", FAR_FUTURE],
        env={**os.environ, **cli_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: --as-of '{FAR_FUTURE}' is out of range; use a time from 1970-01-01 to "
        "2199-12-31 UTC"
    ]


#: Input classes whose handling rests on process-wide state (the csv module's field limit, the
#: recursion limit, a FIFO's open): run by the real entry point in a fresh interpreter too.
FRESH_PROCESS_CASES = [
    "JSON nested 100k levels deep",
    "a CSV field over the csv module's limit",
    "a CSV header field over the csv module's limit",
    "a FIFO given as an import file",
    "a timestamp far in the past in a file",
    "--headroom inf",
]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", FRESH_PROCESS_CASES)
def test_the_entry_point_refuses_each_class_in_one_line_writing_nothing(
    cli_env: dict[str, str], tmp_path: Path, case: str
) -> None:
    arguments, fragments = INPUT_CASES[case]
    url = cli_env["SCHEDULER_DATABASE_URL"]
    before = counts(url)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "scheduler"), *arguments(tmp_path)],
        env={**os.environ, **cli_env},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert_one_line_error((done.returncode, done.stdout, done.stderr), *fragments)
    assert counts(url) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unexpected_error_is_one_line_with_exit_70(
    run: Run, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("scheduler.cli.oracle_stats._stats", broken)
    code, _, err = run("oracle", "stats")

    assert code == boundary.EXIT_INTERNAL
    assert err.strip().splitlines() == [
        "error: unexpected error (KeyError: 'a bug'); this is a bug: rerun with "
        "SCHEDULER_DEBUG=1 for the traceback and report it"
    ]


def _revision(url: str) -> str | None:
    engine = db.make_engine(url)
    try:
        return db.current_revision(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_scheduler_error_is_one_line_with_its_exit_code(
    run: Run, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_: object, **__: object) -> None:
        raise ConflictError("the fleet is busy applying plan 3; retry when it is done")

    monkeypatch.setattr("scheduler.cli.oracle_stats._stats", refused)
    code, _, err = run("oracle", "stats")

    assert code == ConflictError.exit_code
    assert err.strip().splitlines() == [
        "error: the fleet is busy applying plan 3; retry when it is done"
    ]
