"""`scheduler backtest`: a table for people, JSON for programs, a report, exit 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oracle import db
from oracle.errors import InputError
from oracle.goodput import best_goodput
from oracle.sample import ingest_sample
from scheduler.backtest.service import backtest
from scheduler.cli.main import app
from scheduler.config import Settings
from tests.scheduler.backtest.conftest import MODEL, fill_sample

WINDOW = ["--from", "2026-02-27T00:00:00Z", "--to", "2026-02-28T00:00:00Z", "--tick", "1h"]


@pytest.fixture
def sample_env(make_database: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_database("sqlite")  # type: ignore[operator]
    engine = db.make_engine(url)
    fill_sample(engine)
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text("[backtest]\nplanner_interval_s = 21600.0\n")
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", url)
    monkeypatch.setenv("SCHEDULER_CONFIG", str(config))
    return url


def test_json_holds_every_policy_and_the_report_is_written(sample_env: str, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        ["backtest", "--slo", "2500tok/s", *WINDOW, "--format", "json", "--report", str(report),
         "--policies", "planner,on-demand,cheapest-zone"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    bounds = {"hindsight", "hindsight-hedged", "hindsight-region", "clairvoyant"}
    assert set(payload["policies"]) == {"planner", "on-demand", "cheapest-zone", *bounds}
    assert payload["world"]["name"] == "calibrated"
    assert payload["world"]["calibrated"]["global_shock"]["median_up_h"] > 0
    keys = ("cost_usd", "slo_attainment", "cost_usd_ci95", "slo_attainment_ci95",
            "interruptions", "launch_failures", "launches")  # fmt: skip
    hindsight = payload["policies"]["hindsight"]["cost_usd"]
    for name, policy in payload["policies"].items():
        for key in keys:
            assert key in policy, (name, key)
        assert 0.0 <= policy["slo_attainment"] <= 1.0
        low, high = policy["cost_usd_ci95"]
        assert low == policy["cost_usd"] == high  # one seed
        assert policy["deficit_token_hours"] * 3600.0 == pytest.approx(policy["deficit_tokens"])
        assert policy["cost_usd_per_million_tokens"] > 0
        if policy["slo_attainment"] == 1.0:
            # Equal where the best fleet never changes: only float rounding may separate them.
            assert policy["cost_usd"] >= hindsight * (1 - 1e-9)
    for name in bounds - {"hindsight"}:
        assert payload["policies"][name]["cost_usd"] >= hindsight * (1 - 1e-9)
    assert payload["policies"]["on-demand"]["saving_vs_on_demand_pct"] == 0.0
    # Where the money went: the phases and the pools each add up to the bill.
    for name in ("planner", "on-demand", "cheapest-zone"):
        policy = payload["policies"][name]
        assert sum(policy["spend_usd"].values()) == pytest.approx(policy["cost_usd"], rel=1e-9)
        assert sum(p["cost_usd"] for p in policy["pools"]) == pytest.approx(policy["cost_usd"])
        assert sum(p["launches"] for p in policy["pools"]) == policy["launches"]
        costs = [p["cost_usd"] for p in policy["pools"]]
        assert costs == sorted(costs, reverse=True)
    on_demand = payload["policies"]["on-demand"]
    assert {p["market"] for p in on_demand["pools"]} == {"on-demand"}
    spent = on_demand["spend_usd"]
    assert spent["spot_serving"] == 0.0 < spent["on_demand_serving"]
    assert payload["policies"]["hindsight-hedged"]["spend_usd"] is None
    charts = ("capacity.png", "cumulative_cost.png", "fleet_mix.png", "cost_vs_attainment.png",
              "losses.png", "deficits.png")  # fmt: skip
    for name in charts:
        assert (report / name).read_bytes().startswith(b"\x89PNG"), name
    page = (report / "index.html").read_text()
    assert "cheapest-zone" in page and 'src="capacity.png"' in page
    assert 'src="cost_vs_attainment.png"' in page
    assert "Where the money went" in page and "on demand serving" in page


def test_processes_replay_side_by_side_with_the_same_figures(sample_env: str) -> None:
    arguments = ["backtest", "--slo", "2500tok/s", *WINDOW, "--format", "json", "--seeds", "2",
                 "--policies", "planner,planner-nohedge,cheapest-zone"]  # fmt: skip
    alone = CliRunner().invoke(app, arguments)
    side = CliRunner().invoke(app, [*arguments, "--processes", "3"])
    assert alone.exit_code == side.exit_code == 0, side.output
    figures = [
        {name: {k: v for k, v in policy.items() if k != "planning_s"}  # time, not a figure
         for name, policy in json.loads(run.stdout)["policies"].items()}
        for run in (alone, side)
    ]  # fmt: skip
    assert figures[0] == figures[1]
    assert set(figures[0]) >= {"planner", "planner-nohedge", "cheapest-zone", "clairvoyant"}
    refused = CliRunner().invoke(app, [*arguments, "--processes", "0"])
    assert refused.exit_code == 2
    assert "--processes" in refused.output and "Traceback" not in refused.output


def test_several_seeds_give_means_and_confidence_intervals(sample_env: str) -> None:
    arguments = ["backtest", "--slo", "2500tok/s", *WINDOW, "--format", "json", "--seeds", "3",
                 "--policies", "cheapest-zone,spot-hedge"]  # fmt: skip
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["seeds"] == 3
    for name in ("cheapest-zone", "spot-hedge", "clairvoyant"):
        policy = payload["policies"][name]
        low, high = policy["cost_usd_ci95"]
        assert low <= policy["cost_usd"] <= high
        low, high = policy["slo_attainment_ci95"]
        assert low <= policy["slo_attainment"] <= high
    # Each pool's figures are means over the seeds, so the pools sum to the mean bill.
    for name in ("cheapest-zone", "spot-hedge"):
        policy = payload["policies"][name]
        assert sum(p["cost_usd"] for p in policy["pools"]) == pytest.approx(policy["cost_usd"])
        assert sum(p["launches"] for p in policy["pools"]) == pytest.approx(policy["launches"])
    table = CliRunner().invoke(app, [*arguments[:9], "--seeds", "2", "--policies", "cheapest-zone"])
    assert table.exit_code == 0, table.output
    assert "95% CI" in table.output and "world calibrated" in table.output


def test_a_selection_no_type_can_serve_exits_1_and_says_why(sample_env: str) -> None:
    result = _run(["backtest", "--slo", "500tok/s", "--instance-type", "g6.xlarge",
                   "--model", "meta-llama/Llama-3.1-70B-Instruct"])  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "can serve meta-llama/Llama-3.1-70B-Instruct" in result.stderr
    assert "Traceback" not in result.stderr


def test_prices_without_goodput_get_the_reference_figures(
    make_database: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database("sqlite")  # type: ignore[operator]
    engine = db.make_engine(url)
    ingest_sample(engine, seed=3, days=3, end=datetime(2026, 3, 1, tzinfo=UTC),
                  regions=["us-west-2"], instance_types=["g6.xlarge"])  # fmt: skip
    try:
        result = backtest(
            engine, settings=Settings(), slo_tokens_per_second=500.0, tick_s=3600.0,
            start=datetime(2026, 2, 28, 12, tzinfo=UTC), policies=["on-demand"],
        )  # fmt: skip
        with db.session_factory(engine)() as session:
            assert best_goodput(session, model=MODEL)["g6.xlarge"].source in {
                "reference",
                "estimated",
            }
    finally:
        engine.dispose()
    assert result.policies["on-demand"].cost_usd > 0


def test_table_names_every_policy(sample_env: str) -> None:
    arguments = ["backtest", "--slo", "2500tok/s", *WINDOW, "--policies", "on-demand,spot-hedge"]
    result = _run(arguments, columns=80)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout and all(len(line) <= 80 for line in lines)
    for policy in ("on-demand", "spot-hedge", "hindsight"):
        # One row in the cost table and one in the service table, each with the name whole,
        # and the policies (not the bounds) one more in the table of where the money went.
        rows = 2 if policy == "hindsight" else 3
        assert sum(line.split()[:1] == [policy] for line in lines) == rows, policy
    assert "x hindsight" in result.stdout and "interruptions" in result.stdout
    on_demand = next(line for line in lines[lines.index(_line(lines, "spot $")) :]
                     if line.split()[:1] == ["on-demand"]).split()  # fmt: skip
    assert on_demand[1] == "0" and on_demand[2] != "0"  # spot $ 0, on-demand $ not


def _line(lines: list[str], text: str) -> str:
    return next(line for line in lines if text in line)


@pytest.fixture
def empty_env(make_database: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_database("sqlite")  # type: ignore[operator]
    (tmp_path / "config.toml").write_text("")
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", url)
    monkeypatch.setenv("SCHEDULER_CONFIG", str(tmp_path / "config.toml"))
    return url


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--tick", "soon"], "--tick 'soon' is not a positive duration"),
        (["--policies", "yolo"], "unknown policy 'yolo'"),
        (["--from", "yesterday"], "--from 'yesterday' is not a time"),
        (["--slo", "fast"], "fast"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    empty_env: str, arguments: list[str], message: str
) -> None:
    slo = [] if "--slo" in arguments else ["--slo", "500tok/s"]
    result = _run(["backtest", *slo, *arguments])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_window_that_ends_before_it_starts_is_refused(sample_env: str) -> None:
    window = ["--from", "2026-02-28T00:00:00Z", "--to", "2026-02-27T00:00:00Z"]
    result = _run(["backtest", "--slo", "500tok/s", *window])
    assert result.returncode == 2
    assert "is not before" in result.stderr and "Traceback" not in result.stderr


def test_an_empty_oracle_is_refused_with_what_to_do(empty_env: str) -> None:
    result = _run(["backtest", "--slo", "500tok/s"])
    assert result.returncode == 2
    assert "no spot price history" in result.stderr
    assert "scheduler oracle" in result.stderr


def _run(arguments: list[str], columns: int = 200) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "scheduler"), *arguments]
    environment = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(command, env=environment, capture_output=True, text=True, check=False)


def test_region_and_type_narrow_the_market(sample_env: str) -> None:
    engine = db.make_engine(sample_env)
    try:
        result = backtest(
            engine,
            settings=Settings(),
            slo_tokens_per_second=2500.0,
            start=datetime(2026, 2, 27, tzinfo=UTC),
            end=datetime(2026, 2, 28, tzinfo=UTC),
            tick_s=3600.0,
            policies=["on-demand", "cheapest-zone", "spot-hedge"],
            regions=["us-west-2"],
            instance_types=["g6.xlarge", "g5.xlarge"],
        )
        with pytest.raises(InputError, match="--region eu-north-9"):
            backtest(engine, settings=Settings(), slo_tokens_per_second=1.0, regions=["eu-north-9"])
    finally:
        engine.dispose()
    pools = {i.pool for policy in result.policies.values() for i in policy.instances}
    assert pools and {p.region for p in pools} == {"us-west-2"}
    assert {p.instance_type for p in pools} <= {"g6.xlarge", "g5.xlarge"}
