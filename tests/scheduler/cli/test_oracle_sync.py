"""`scheduler oracle sync` against moto's server (through AWS_ENDPOINT_URL) and the sample."""

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
from oracle.models import IngestRunModel, InterruptionFrequencyModel, SpotPriceModel
from scheduler.cli.main import app
from tests.oracle.aws.conftest import moto_url  # noqa: F401 (fixture)

TYPES = "g5.xlarge,g5.2xlarge,g5.4xlarge"


@pytest.fixture
def cli_env(
    moto_url: str,  # noqa: F811
    database_url: str,
    tmp_path: Path,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Environment of a command: moto as the AWS endpoint, a fresh database, a config file."""
    config = tmp_path / "config.toml"
    advisor = shared_data / "spotinfo-advisor" / "spot-advisor-data.json"
    config.write_text(f'[oracle]\nadvisor_file = "{advisor}"\nhistory_days = 30\n')
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SCHEDULER_DATABASE_URL": database_url,
        "SCHEDULER_CONFIG": str(config),
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def count(url: str, model: type, *where: object) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            statement = sa.select(sa.func.count()).select_from(model).where(*where)
            return int(connection.execute(statement).scalar_one())
    finally:
        engine.dispose()


def test_sync_from_moto_prints_a_summary(cli_env: dict[str, str]) -> None:
    args = ["oracle", "sync", "--regions", "us-east-1,eu-west-1", "--types", TYPES]
    result = CliRunner().invoke(app, [*args, "--kinds", "spot_prices,advisor"])

    assert result.exit_code == 0, result.output
    assert "Synced from AWS" in result.output
    assert "2 region(s) synced" in result.output
    assert "Spot Advisor feed:" in result.output
    url = cli_env["SCHEDULER_DATABASE_URL"]
    assert count(url, SpotPriceModel, SpotPriceModel.source == "aws") > 0
    assert count(url, InterruptionFrequencyModel, InterruptionFrequencyModel.source == "file") > 0


def test_json_names_the_failed_region(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app,
        [
            "oracle",
            "sync",
            "--regions",
            "us-east-1",
            "--regions",
            "ap-east-1",
            "--types",
            TYPES,
            "--kinds",
            "catalog",
            "--format",
            "json",
        ],
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["succeeded"] == ["us-east-1"]
    assert payload["failed"] == ["ap-east-1"]
    (failed,) = [region for region in payload["regions"] if region["region"] == "ap-east-1"]
    assert failed["error"].startswith("catalog: OptInRequired")
    url = cli_env["SCHEDULER_DATABASE_URL"]
    assert count(url, IngestRunModel, IngestRunModel.status == "failed") == 1


def test_no_region_synced_exits_1(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["oracle", "sync", "--regions", "ap-east-1"])

    assert result.exit_code == 1
    assert "0 region(s) synced; failed: ap-east-1" in result.output


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_input_is_one_line_and_exit_2(cli_env: dict[str, str]) -> None:
    command = [str(Path(sys.executable).parent / "scheduler"), "oracle", "sync"]
    env = {**os.environ, **cli_env}

    unknown = subprocess.run(
        [*command, "--regions", "us-nowhere-1"], env=env, capture_output=True, text=True
    )
    kinds = subprocess.run([*command, "--kinds", "prices"], env=env, capture_output=True, text=True)

    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: unknown region 'us-nowhere-1'")
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert kinds.returncode == 2
    assert "--kinds: unknown kind 'prices'" in kinds.stderr
    assert count(cli_env["SCHEDULER_DATABASE_URL"], IngestRunModel) == 0


def test_sample_source_marks_every_row(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app,
        ["oracle", "sync", "--source", "sample", "--regions", "us-east-1", "--types", "g5.xlarge"],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    assert "SAMPLE" in result.output
    url = cli_env["SCHEDULER_DATABASE_URL"]
    assert count(url, SpotPriceModel) == count(
        url, SpotPriceModel, SpotPriceModel.source == "sample"
    )
    assert count(url, SpotPriceModel, SpotPriceModel.region != "us-east-1") == 0
    assert count(url, SpotPriceModel) > 0
