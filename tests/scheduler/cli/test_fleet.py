"""The command line: apply, status and down against moto; serve as a real uvicorn process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from bench.fakeserver import FakeServer, FakeServerConfig
from scheduler.cli.main import app
from tests.scheduler.fleet_helpers import running_by_pool
from tests.scheduler.hold_apply_lock import apply_lock_held_elsewhere
from tests.scheduler.market import MODEL, seed_market

SCHEDULER = str(Path(sys.executable).parent / "scheduler")


@pytest.fixture
def replica() -> Iterator[FakeServer]:
    with FakeServer(FakeServerConfig(model=MODEL, ttft_s=0.0, gap_s=0.0)) as server:
        yield server


@pytest.fixture
def config_file(
    tmp_path: Path,
    database_url: str,
    moto_url: str,
    network: dict[str, Any],
    replica: FakeServer,
) -> Path:
    subnets = ", ".join(f'"{zone}" = "{subnet}"' for zone, subnet in network["subnets"].items())
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{database_url}"
[planner]
model = "{MODEL}"
[service]
name = "llm-cli"
aws_endpoint_url = "{moto_url}"
target_group_arn = "{network["target_group"]}"
drain_s = 0.0
[service.spec]
image_id = "{network["image"]}"
subnets = {{ {subnets} }}
# Every replica's endpoint is the one local fake server (moto's instances have no network).
endpoint_template = "{replica.url}"
readiness_interval_s = 0.05
readiness_timeout_s = 60.0
"""
    )
    return path


def test_apply_status_down(
    engine: Engine, aws: Callable[..., Any], network: dict[str, Any], config_file: Path
) -> None:
    seed_market(
        engine,
        network["zones"],
        {
            (network["zones"][0][1], "g5.xlarge"): 0.3,
            (network["zones"][1][1], "g5.xlarge"): 0.3,
            (network["zones"][2][1], "g6.xlarge"): 0.25,
        },
    )
    runner = CliRunner()
    base = ["--config", str(config_file)]
    dry = runner.invoke(app, [*base, "apply", "--slo", "600tok/s", "--dry-run", "--format", "json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] and planned["actions"]
    assert running_by_pool(aws) == {}

    applied = runner.invoke(app, [*base, "apply", "--slo", "600tok/s", "--format", "json"])
    assert applied.exit_code == 0, applied.output
    result = json.loads(applied.stdout)
    assert result["ready"] and not result["failed"]
    assert sum(running_by_pool(aws).values()) == len(result["ready"])

    status = runner.invoke(app, [*base, "status", "--format", "json"])
    payload = json.loads(status.stdout)
    assert payload["service"]["replicas_ready"] == len(result["ready"])
    assert {r["state"] for r in payload["replicas"]} == {"READY"}
    table = runner.invoke(app, [*base, "status"])
    assert "Service Replicas" in table.stdout and "READY" in table.stdout

    down = runner.invoke(app, [*base, "down", "--yes", "--format", "json"])
    assert down.exit_code == 0, down.output
    assert running_by_pool(aws) == {}
    after = json.loads(runner.invoke(app, [*base, "status", "--format", "json"]).stdout)
    assert after["replicas"] == []


def test_apply_without_an_slo_is_a_one_line_error(config_file: Path) -> None:
    process = subprocess.run(
        [SCHEDULER, "--config", str(config_file), "apply"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.count("\n") == 1 and "--slo" in process.stderr
    assert "Traceback" not in process.stderr


def test_serve_runs_the_api_on_uvicorn(config_file: Path) -> None:
    env = {**os.environ, "SCHEDULER_API_TOKEN": "t0ken"}
    process = subprocess.Popen(
        [SCHEDULER, "--config", str(config_file), "serve", "--port", "0", "--no-jobs"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("serving on "), line
        url = line.removeprefix("serving on ").strip()
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        refused = httpx.post(f"{url}/plans", json={"slo": "1tok/s", "allocations": []})
        assert refused.status_code == 401
        accepted = httpx.post(
            f"{url}/plans",
            json={"slo": "1tok/s", "allocations": []},
            headers={"Authorization": "Bearer t0ken"},
        )
        assert accepted.status_code == 201
    finally:
        process.terminate()
        process.wait(20)


def test_apply_while_another_process_applies_is_refused(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    config_file: Path,
    database_url: str,
) -> None:
    from oracle.db import transaction
    from scheduler.models import PlanModel

    seed_market(engine, network["zones"], {(network["zones"][0][1], "g5.xlarge"): 0.3})
    command = [SCHEDULER, "--config", str(config_file), "apply", "--slo", "300tok/s"]
    with apply_lock_held_elsewhere(database_url, "llm-cli"):
        refused = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "another apply is running for service 'llm-cli'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert running_by_pool(aws) == {}
    with transaction(engine) as session:
        assert session.query(PlanModel).count() == 0  # refused before anything was stored

    applied = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stderr
    assert sum(running_by_pool(aws).values()) >= 1


def test_serve_with_jobs_runs_and_records_them(config_file: Path, engine: Engine) -> None:
    import random

    import sqlalchemy as sa

    from oracle.db import transaction
    from scheduler.models import JobRunModel

    lock_key = random.randrange(1, 2**31)
    with config_file.open("a") as handle:
        # Short intervals; the oracle syncs stay hours away (they would call AWS).
        handle.write(f"[jobs]\njitter_s = 0.0\nreconcile_interval_s = 0.5\nlock_key = {lock_key}\n")
    process = subprocess.Popen(
        [SCHEDULER, "--config", str(config_file), "serve", "--port", "0", "--jobs"],
        stderr=subprocess.PIPE,
        text=True,
    )

    def reconcile_runs() -> list[tuple[str, str]]:
        with transaction(engine) as session:
            rows = session.execute(
                sa.select(JobRunModel.status, JobRunModel.worker).where(
                    JobRunModel.job == "reconcile"
                )
            ).all()
            return [(status, worker) for status, worker in rows]

    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("serving on "), line
        url = line.removeprefix("serving on ").strip()
        runs: list[tuple[str, str]] = []
        for _ in range(600):  # the start-up reconcile, then at least two scheduled ones
            runs = reconcile_runs()
            if len(runs) >= 3:
                break
            time.sleep(0.1)
        assert len(runs) >= 3, runs
        assert {status for status, _ in runs} == {"ok"}
        assert {worker.rsplit(":", 1)[1] for _, worker in runs} == {str(process.pid)}
        assert httpx.get(f"{url}/healthz", timeout=5).is_success  # the API serves meanwhile
    finally:
        process.terminate()
        process.wait(20)
