"""`scheduler bench run|import|list` against the fake vLLM server, on both databases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.fakeserver import FakeServer, FakeServerConfig
from bench.record import list_runs
from oracle import db
from oracle.db import transaction
from oracle.models import BenchmarkRunModel
from scheduler.cli.main import app
from tests.bench.conftest import FIXTURES

MODEL = "fake-model"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    config = FakeServerConfig(model=MODEL, ttft_s=0.01, gap_s=0.002, batch_limit=4)
    with FakeServer(config) as running:
        yield running


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{database_url}"

[bench]
requests_per_point = 4
min_window_requests = 0

[bench.workloads.tiny]
kind = "fixed"
api = "completions"
input_tokens = 8
output_tokens = 8
"""
    )
    return path


def invoke(config_file: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config_file), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def runs(database_url: str) -> list[BenchmarkRunModel]:
    engine = db.make_engine(database_url)
    try:
        with transaction(engine) as session:
            return sorted(list_runs(session), key=lambda run: run.id)
    finally:
        engine.dispose()


def test_run_json_has_goodput_and_points(
    server: FakeServer, config_file: Path, database_url: str
) -> None:
    code, out = invoke(
        config_file,
        "bench",
        "run",
        "--endpoint",
        server.url,
        "--model",
        MODEL,
        "--instance-type",
        "g6.xlarge",
        "--workload",
        "tiny",
        "--max-concurrency",
        "4",
        "--ttft-p95-ms",
        "5000",
        "--tpot-p95-ms",
        "5000",
        "--format",
        "json",
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["status"] == "complete"
    assert [p["concurrency"] for p in payload["points"]] == [1, 2, 4]
    for point in payload["points"]:
        for key in (
            "output_tokens_per_second",
            "ttft_ms_p95",
            "tpot_ms_p95",
            "ttft_ms_mean",
            "tpot_ms_mean",
            "error_rate",
        ):
            assert isinstance(point[key], float), key
    best = max(p["goodput_tokens_per_second"] for p in payload["points"])
    assert payload["goodput_tokens_per_second"] == best
    assert payload["engine_version"] == "0.0.0+fake"
    (stored,) = runs(database_url)
    assert stored.id == payload["run_id"] and stored.status == "complete"
    assert stored.workload_id == "tiny" and len(stored.points) == 3


def test_run_table_then_list(server: FakeServer, config_file: Path) -> None:
    code, out = invoke(
        config_file,
        *("bench", "run", "--endpoint", server.url, "--model", MODEL),
        *("--instance-type", "g6.xlarge", "--workload", "tiny", "--max-concurrency", "2"),
        *("--ttft-p95-ms", "5000", "--tpot-p95-ms", "5000"),
    )
    assert code == 0
    assert "c=2" in out and "goodput" in out
    code, out = invoke(config_file, "bench", "list", "--model", MODEL, "--format", "json")
    assert code == 0
    (figure,) = json.loads(out)["figures"]
    assert figure["instance_type"] == "g6.xlarge" and figure["source"] == "measured"


def test_import_then_list(config_file: Path) -> None:
    code, out = invoke(
        config_file,
        *("bench", "import", str(FIXTURES / "vllm_bench_serve_c4.json")),
        *("--instance-type", "c7i.xlarge", "--format", "json"),
    )
    assert code == 0
    assert json.loads(out)["goodput_tokens_per_second"] == pytest.approx(34.09)
    code, out = invoke(config_file, "bench", "list", "--model", "smollm2")
    assert code == 0
    assert "c7i.xlarge" in out and "imported" in out


def test_list_on_a_fresh_database_stores_no_figure_without_a_catalog(config_file: Path) -> None:
    code, out = invoke(config_file, "bench", "list", "--format", "json")
    assert code == 0
    assert json.loads(out) == {"model": "meta-llama/Llama-3.1-8B-Instruct", "figures": []}


#: Runs argv[1:] with SIGINT's disposition reset to the default (exec keeps it).
_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def scheduler_command() -> list[str]:
    found = shutil.which("scheduler", path=str(Path(sys.executable).parent))
    return (
        [found] if found else [sys.executable, "-c", "from scheduler.cli.main import main; main()"]
    )


def test_unreachable_endpoint_one_line_exit_2(tmp_path: Path) -> None:
    # No database is touched before the probe fails; one backend is enough.
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/db.sqlite3"\n'
        '[bench.workloads.tiny]\nkind = "fixed"\ninput_tokens = 8\noutput_tokens = 8\n'
    )
    done = subprocess.run(
        [
            *scheduler_command(),
            *("--config", str(config), "bench", "run"),
            *("--endpoint", "http://127.0.0.1:9", "--model", MODEL),
            *("--instance-type", "g6.xlarge", "--workload", "tiny", "--connect-timeout-s", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach http://127.0.0.1:9")
    assert "Traceback" not in done.stderr


def test_unknown_workload_is_refused(config_file: Path, server: FakeServer) -> None:
    with pytest.raises(Exception, match="unknown workload 'nope'"):
        invoke(
            config_file,
            *("bench", "run", "--endpoint", server.url, "--model", MODEL),
            *("--instance-type", "g6.xlarge", "--workload", "nope"),
        )


@pytest.mark.parametrize("backend", ["sqlite"])  # recording on both: tests/bench/test_record
def test_ctrl_c_keeps_partial_results(config_file: Path, database_url: str, tmp_path: Path) -> None:
    # Slow requests (8 tokens, 10 ms apart) so that Ctrl-C lands mid-sweep.
    config = FakeServerConfig(model=MODEL, ttft_s=0.02, gap_s=0.01, batch_limit=64)
    with FakeServer(config) as slow:
        process = subprocess.Popen(
            [
                # As from a terminal: SIGINT at its default. A test runner started in the
                # background by a shell without job control ignores SIGINT, and its children
                # inherit that (two CI runs so started: exit 0, the signal ignored).
                *(sys.executable, "-c", _WITH_DEFAULT_SIGINT),
                *scheduler_command(),
                *("--config", str(config_file), "bench", "run"),
                *("--endpoint", slow.url, "--model", MODEL, "--instance-type", "g6.xlarge"),
                *("--workload", "tiny", "--format", "json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 60
        # Wait until the first point (4 requests) is done and the second has started.
        while slow.counters.requests < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.poll() is None, "the sweep ended before Ctrl-C"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    payload = json.loads(out)
    assert payload["status"] == "incomplete"
    assert payload["points"] and payload["points"][0]["concurrency"] == 1
    assert "partial results stored as incomplete run" in err
    (stored,) = runs(database_url)
    assert stored.status == "incomplete" and stored.id == payload["run_id"]
    assert len(stored.points) == len(payload["points"])
