"""`scheduler oracle import`: tables for people, JSON for programs, exit 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from oracle import db
from oracle.models import IngestRunModel, OnDemandPriceModel, SpotPriceModel
from scheduler.cli.main import app

SPOT_TSV = "ericpauley-spot-history/2022-05-31_gpu.tsv"
ON_DEMAND = "amorton45-p5-ondemand/gpu_prices.csv"
CATALOG = "skypilot-catalog/aws_gpu_vms_snapshot_27f67dd.csv"
TRACE = "skypilot-spot-traces/preemption/1-node/aws-04-22-2023/us-west-2b_v100_1.json"


def counts(url: str) -> dict[str, int]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                model.__table__.name: connection.execute(
                    sa.select(sa.func.count()).select_from(model)
                ).scalar_one()
                for model in (SpotPriceModel, OnDemandPriceModel, IngestRunModel)
            }
    finally:
        engine.dispose()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "scheduler"), "oracle", "import", *args]
    return subprocess.run(
        command, env={**os.environ, **env, "COLUMNS": "160"}, capture_output=True, text=True
    )


def test_table_names_each_file_and_its_rows(cli_env: dict[str, str], shared_data: Path) -> None:
    result = run_cli(cli_env, str(shared_data / SPOT_TSV), str(shared_data / ON_DEMAND))

    assert result.returncode == 0, result.stderr
    rows = [line.split("│")[1:-1] for line in result.stdout.splitlines() if "│" in line]
    cells = [[cell.strip() for cell in row] for row in rows]
    assert ["2022-05-31_gpu.tsv", "1834", "spot_prices", "1834", "per record"] in cells
    assert ["spot_price_history", "", "", "", ""] in cells
    assert ["gpu_prices.csv", "500", "on_demand_prices", "487", "per record"] in cells
    assert "gpu_prices.csv: 13 rows with an empty price skipped" in result.stdout
    assert counts(cli_env["SCHEDULER_DATABASE_URL"]) == {
        "spot_prices": 1834,
        "on_demand_prices": 487,
        "ingest_runs": 2,
    }


@pytest.mark.parametrize("backend", ["sqlite"])
def test_json_output_and_a_second_import_adds_nothing(
    cli_env: dict[str, str], shared_data: Path
) -> None:
    args = ["oracle", "import", "--format", "json", "--observed-at", "2025-03-01T00:00:00Z"]
    first = CliRunner().invoke(app, [*args, str(shared_data / CATALOG)], catch_exceptions=False)
    second = CliRunner().invoke(app, [*args, str(shared_data / CATALOG)], catch_exceptions=False)

    assert first.exit_code == 0, first.output
    [entry] = json.loads(first.stdout)
    assert entry["path"] == str(shared_data / CATALOG)
    assert (entry["kind"], entry["format"]) == ("skypilot_catalog", "skypilot-aws-catalog-csv")
    assert entry["rows_read"] == 805
    assert entry["rows_inserted"]["spot_prices"] == 770
    assert (entry["observed_at"], entry["observed_at_from"]) == (
        "2025-03-01T00:00:00+00:00",
        "--observed-at",
    )
    [again] = json.loads(second.stdout)
    assert set(again["rows_inserted"].values()) == {0}


def test_bad_row_is_one_line_exit_2_and_writes_nothing(
    cli_env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "timestamp,availability_zone,instance_type,product_description,spot_price\n"
        "2021-03-02T01:45:29+00:00,us-east-1a,g4dn.xlarge,Linux/UNIX,0.1578\n"
        "2021-03-02T01:45:29+00:00,us-east-1a,g4dn.2xlarge,Linux/UNIX,-1\n"
    )
    url = cli_env["SCHEDULER_DATABASE_URL"]
    before = counts(url)

    result = run_cli(cli_env, str(shared_data / SPOT_TSV), str(bad))

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}:3: spot price '-1' is not a price;")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert counts(url) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_trace_is_refused_with_the_command_that_handles_it(
    cli_env: dict[str, str], shared_data: Path
) -> None:
    result = run_cli(cli_env, str(shared_data / TRACE))

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {shared_data / TRACE}: this is a spot preemption trace, not price data or an "
        "availability trace; replay it with `scheduler backtest` instead"
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_observed_at_is_refused(cli_env: dict[str, str], shared_data: Path) -> None:
    result = run_cli(cli_env, "--observed-at", "last spring", str(shared_data / CATALOG))

    assert result.returncode == 2
    assert result.stderr.startswith("error: --observed-at 'last spring' is not a time")
    assert counts(cli_env["SCHEDULER_DATABASE_URL"])["ingest_runs"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_help_lists_the_formats(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["oracle", "import", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for words in ("describe-spot-price-history", "SkyPilot", "Spot Advisor", "--observed-at"):
        assert words in result.output
