"""`scheduler oracle stats`: JSON for programs, a table that flags sample data, exit 2 on bad
input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import pytest
from typer.testing import CliRunner

from oracle import db
from oracle.models import SpotPriceModel
from oracle.risk import RISK_KEYS
from oracle.sample import ingest_sample
from oracle.stats import pool_stats, pool_stats_to_dict
from oracle.store import insert_ignore
from scheduler.cli import output
from scheduler.cli.main import app
from scheduler.cli.oracle_stats import HELP

END = datetime(2026, 11, 20, tzinfo=UTC)
REQUIRED_KEYS = {
    "region",
    "availability_zone",
    "instance_type",
    "current_price_usd_per_hour",
    "mean_price_usd_per_hour_7d",
    "mean_price_usd_per_hour_30d",
    "mean_price_usd_per_hour_90d",
    "on_demand_price_usd_per_hour",
    "source",
}


@pytest.fixture
def sample_market(cli_env: dict[str, str]) -> dict[str, str]:
    engine = db.make_engine(cli_env["SCHEDULER_DATABASE_URL"])
    ingest_sample(
        engine,
        seed=5,
        days=30,
        end=END,
        regions=["us-east-1", "eu-west-1"],
        instance_types=["g5.xlarge", "p4d.24xlarge"],
    )
    engine.dispose()
    return cli_env


def invoke(*args: str, columns: int = 220) -> tuple[int, str, str]:
    # The console reads COLUMNS once, when the process first imports it: set its width here.
    with patch.object(output.console, "_width", columns):
        result = CliRunner().invoke(app, ["oracle", "stats", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_lists_every_pool_with_the_documented_keys(sample_market: dict[str, str]) -> None:
    code, out, err = invoke(
        "--format", "json", "--region", "us-east-1", "--type", "g5.xlarge", "--as-of", "2026-11-20"
    )
    assert code == 0, err
    payload = json.loads(out)
    assert len(payload) >= 4
    assert all(set(item) >= REQUIRED_KEYS for item in payload)
    assert {(p["region"], p["instance_type"]) for p in payload} == {("us-east-1", "g5.xlarge")}
    assert all(p["source"] == "sample" and p["sample"] for p in payload)
    assert "sample data: not real prices" in err
    engine = db.make_engine(sample_market["SCHEDULER_DATABASE_URL"])
    with db.transaction(engine) as session:
        expected = pool_stats(
            session, as_of=END, regions=["us-east-1"], instance_types=["g5.xlarge"]
        )
    engine.dispose()
    prices = [{k: v for k, v in item.items() if k not in RISK_KEYS} for item in payload]
    assert prices == json.loads(json.dumps([pool_stats_to_dict(s) for s in expected]))
    # No observations: every pool's risk is its Advisor band's prior.
    assert {item["risk_source"] for item in payload} == {"prior"}
    for item in payload:
        assert item["hazard_per_hour"] == pytest.approx(item["risk_prior_hazard_per_hour"])
    # Every key is documented in the command's help.
    for key in payload[0]:
        fact = key.rsplit("_", 2 if key.endswith("_age_s") or key.endswith("_observed_at") else 1)
        if key != "source" and key.endswith(("_source", "_observed_at", "_age_s")):
            assert f"{fact[0]}_*" in HELP, key
        elif key.startswith("mean_price_usd_per_hour_"):
            assert key.rsplit("_", 1)[1] in HELP, key
        else:
            assert key in HELP, key


def test_comma_lists_and_repeats_narrow_alike(sample_market: dict[str, str]) -> None:
    _, comma, _ = invoke(
        "--format", "json", "--as-of", "2026-11-20", "--type", "g5.xlarge,p4d.24xlarge"
    )
    _, repeat, _ = invoke(
        "--format", "json", "--as-of", "2026-11-20", "--type", "g5.xlarge", "--type", "p4d.24xlarge"
    )
    _, everything, _ = invoke("--format", "json", "--as-of", "2026-11-20")
    assert json.loads(comma) == json.loads(repeat) == json.loads(everything)
    _, eu, _ = invoke("--format", "json", "--as-of", "2026-11-20", "--region", "eu-west-1")
    assert {p["region"] for p in json.loads(eu)} == {"eu-west-1"}


def test_as_of_hides_what_came_later(sample_market: dict[str, str]) -> None:
    engine = db.make_engine(sample_market["SCHEDULER_DATABASE_URL"])
    with db.transaction(engine) as session:
        pool = pool_stats(session, as_of=END, regions=["eu-west-1"], instance_types=["g5.xlarge"])[
            0
        ]
        insert_ignore(
            session,
            SpotPriceModel,
            [
                {
                    "source": "aws",
                    "observed_at": END + timedelta(hours=2),
                    "region": pool.region,
                    "zone": pool.zone,
                    "availability_zone": pool.availability_zone,
                    "availability_zone_id": pool.availability_zone_id,
                    "instance_type": pool.instance_type,
                    "product_description": "Linux/UNIX",
                    "timestamp": END + timedelta(hours=1),
                    "price_usd_per_hour": 0.7777,
                }
            ],
        )
    engine.dispose()

    def current(as_of: str) -> dict[str, object]:
        _, out, _ = invoke("--format", "json", "--as-of", as_of, "--type", "g5.xlarge")
        (item,) = [p for p in json.loads(out) if p["zone"] == pool.zone]
        return item

    before = current("2026-11-20T00:00:00Z")
    after = current("2026-11-20T03:00:00+00:00")
    assert before["current_price_usd_per_hour"] == pool.current_price_usd_per_hour
    assert before["source"] == "sample"
    assert after["current_price_usd_per_hour"] == 0.7777
    assert after["source"] == "aws"
    assert after["price_age_s"] == 2 * 3600


def test_table_flags_sample_data_plainly(sample_market: dict[str, str]) -> None:
    code, out, _ = invoke("--as-of", "2026-11-20", "--region", "us-east-1")
    assert code == 0
    assert "sample data: not real prices" in out
    assert "g5.xlarge" in out and "p4d.24xlarge" in out
    assert "us-east-1" in out and "eu-west-1" not in out


def test_default_table_fits_80_columns_and_wide_shows_every_figure(
    sample_market: dict[str, str],
) -> None:
    code, out, _ = invoke("--as-of", "2026-11-20", "--type", "p4d.24xlarge", columns=80)
    assert code == 0
    rows = [line for line in out.splitlines() if "p4d.24xlarge" in line]
    assert rows and all("…" not in line and len(line) <= 80 for line in rows)
    assert "p95" not in out and "Last price change" in out
    code, out, _ = invoke("--as-of", "2026-11-20", "--type", "p4d.24xlarge", "--wide")
    assert code == 0
    header = next(line for line in out.splitlines() if "p95" in line).split()
    assert {"region", "30d", "p95", "max", "vol", "scores", "source", "age"} <= set(header)


def test_real_data_carries_no_sample_flag(cli_env: dict[str, str], shared_data: Path) -> None:
    from oracle.importers import import_files

    engine = db.make_engine(cli_env["SCHEDULER_DATABASE_URL"])
    import_files(engine, [shared_data / "ericpauley-spot-history/2022-05-31_gpu.tsv"])
    engine.dispose()
    code, out, err = invoke("--as-of", "2022-06-01", "--type", "p3.2xlarge")
    assert code == 0, err
    assert "p3.2xlarge" in out
    assert "sample" not in out.lower()


def test_empty_oracle_says_how_to_fill_it(cli_env: dict[str, str]) -> None:
    code, out, err = invoke()
    assert code == 0
    assert "scheduler oracle sync" in err
    code, out, _ = invoke("--format", "json")
    assert code == 0 and json.loads(out) == []


def test_bad_as_of_is_one_line_and_exit_2(cli_env: dict[str, str]) -> None:
    command = [str(Path(sys.executable).parent / "scheduler"), "oracle", "stats", "--as-of", "soon"]
    result = subprocess.run(command, env={**os.environ, **cli_env}, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --as-of 'soon' is not a time; write ISO 8601")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_observed_risk_is_shown_as_of_a_moment(cli_env: dict[str, str], shared_data: Path) -> None:
    from oracle.importers import import_files

    engine = db.make_engine(cli_env["SCHEDULER_DATABASE_URL"])
    trace = "skypilot-spot-traces/availability/1-node/aws-02-15-2023/us-west-2b_v100_1.json"
    import_files(engine, [shared_data / trace])
    engine.dispose()
    _, before, _ = invoke("--format", "json", "--as-of", "2023-02-01")
    assert json.loads(before) == []
    code, out, err = invoke("--format", "json", "--as-of", "2023-03-01")
    assert code == 0, err
    (pool,) = json.loads(out)
    assert (pool["zone"], pool["instance_type"], pool["current_price_usd_per_hour"]) == (
        "us-west-2b",
        "p3.2xlarge",
        None,
    )
    assert pool["risk_source"] == "observed (file)"
    assert pool["risk_losses"] > 20 and 0 < pool["risk_age_s"] <= 3600
    assert pool["hazard_per_hour"] > 100 * pool["risk_prior_hazard_per_hour"]
    assert 0.8 < pool["launch_availability"] < 0.95
    code, table, _ = invoke("--as-of", "2023-03-01")
    assert code == 0
    assert "Observed spot pools without prices" in table
    row = next(line for line in table.splitlines() if "us-west-2b" in line).split()
    assert row[:3] == ["us-west-2", "us-west-2b", "p3.2xlarge"]
    assert row[4] == f"{100 * pool['launch_availability']:.1f}%"
