"""The replay on real data: the 2021 us-east-1 spot price history, with on-demand list prices
from the SkyPilot catalog snapshot and instance specs from moto's DescribeInstanceTypes."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from oracle.errors import InputError
from oracle.importers import import_files
from oracle.reference import ensure_goodput_figures
from scheduler.backtest.draw import draw_world
from scheduler.backtest.interruptions import InterruptionModel
from scheduler.backtest.market import MarketHistory
from scheduler.backtest.service import backtest
from scheduler.backtest.world import WorldOptions
from scheduler.config import BacktestConfig, Settings
from tests.scheduler.backtest.conftest import MODEL

HISTORY = "lucianamarques-spot-history/us-east-1_2021-03-02_2021-05-31_gpu.csv"
CATALOG = "skypilot-catalog/aws_gpu_vms_snapshot_27f67dd.csv"
SPECS = "moto-ec2/instance_types_accelerated.json"
#: Fits one T4 (the file's g4dn types have one, except none of 12xlarge/metal are in it).
SMALL_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


def test_replays_the_2021_us_east_1_history(
    engine: Engine, shared_data: Path, tmp_path: Path
) -> None:
    on_demand = _on_demand_history(shared_data / CATALOG, shared_data / HISTORY, tmp_path)
    import_files(engine, [shared_data / HISTORY, on_demand, shared_data / SPECS])
    # The default model's reference figures anchor the small model's estimates.
    ensure_goodput_figures(engine, model=MODEL)
    assert ensure_goodput_figures(engine, model=SMALL_MODEL) > 0
    # The advisor world: no capacity failures, so that every policy carries the SLO throughout.
    config = BacktestConfig(planner_interval_s=6 * 3600.0, seed=3, world="advisor")
    settings = Settings(backtest=config)
    result = backtest(
        engine,
        settings=settings,
        slo_tokens_per_second=3000.0,
        model=SMALL_MODEL,
        start=datetime(2021, 4, 1, tzinfo=UTC),
        end=datetime(2021, 4, 3, tzinfo=UTC),
        tick_s=3600.0,
    )
    assert set(result.policies) == set(settings.backtest.policies)
    on_demand_cost = result.policies["on-demand"].cost_usd
    for name, policy in result.policies.items():
        assert policy.cost_usd > 0, name
        # Equal where the best fleet never changes: only float rounding may separate them.
        assert result.hindsight_cost_usd <= policy.cost_usd * (1 + 1e-9), name
        assert all(i.pool.region == "us-east-1" for i in policy.instances), name
    cheapest = result.policies["cheapest-zone"]
    assert {i.pool.market for i in cheapest.instances} == {"spot"}
    # In 2021 us-east-1 spot sold g4dn far below the list price.
    assert cheapest.cost_usd < 0.6 * on_demand_cost
    assert {i.pool.market for i in result.policies["on-demand"].instances} == {"on-demand"}


def test_the_default_window_is_the_last_days_the_oracle_holds(
    engine: Engine, shared_data: Path, tmp_path: Path
) -> None:
    on_demand = _on_demand_history(shared_data / CATALOG, shared_data / HISTORY, tmp_path)
    import_files(engine, [shared_data / HISTORY, on_demand, shared_data / SPECS])
    ensure_goodput_figures(engine, model=MODEL)
    ensure_goodput_figures(engine, model=SMALL_MODEL)
    settings = Settings(backtest=BacktestConfig(days=1, policies=["on-demand", "cheapest-zone"]))
    result = backtest(engine, settings=settings, slo_tokens_per_second=1000.0, model=SMALL_MODEL)
    assert result.options.end <= datetime(2021, 6, 1, tzinfo=UTC)
    assert result.options.end >= datetime(2021, 5, 30, tzinfo=UTC)
    assert (result.options.end - result.options.start).total_seconds() == 86_400.0


def _on_demand_history(catalog: Path, history: Path, directory: Path) -> Path:
    """The catalog's us-east-1 Linux list price of each type in the history, as an on-demand
    price history (the tracker's format) effective before the history starts."""
    with history.open() as handle:
        types = {row["instance_type"] for row in csv.DictReader(handle)}
    path = directory / "on_demand_2021.csv"
    with catalog.open() as source, path.open("w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(["timestamp", "instance", "price_usd"])
        seen = set()
        for row in csv.DictReader(source):
            name = row["InstanceType"]
            if row["Region"] == "us-east-1" and name in types and name not in seen and row["Price"]:
                seen.add(name)
                writer.writerow(["2021-03-01T00:00:00+00:00", name, row["Price"]])
    return path


TRACE = "skypilot-spot-traces/availability/1-node/aws-02-15-2023/us-east-1a_v100_1.json"


def test_a_real_availability_trace_drives_its_pool(engine: Engine, shared_data: Path) -> None:
    import_files(engine, [shared_data / HISTORY])
    history = MarketHistory.load(engine)
    start = datetime(2021, 4, 1, tzinfo=UTC).timestamp()
    end = start + 2 * 86_400.0
    trace = shared_data / TRACE
    model = InterruptionModel(traces={"us-east-1a/p3.2xlarge": trace})
    window = {"seed": 1, "start_s": start, "end_s": end}
    world = draw_world(
        history, options=WorldOptions("traces", trace_set=""), interruptions=model, **window
    )
    [pool] = [p for p in history.pools if (p.zone, p.instance_type) == ("us-east-1a", "p3.2xlarge")]
    payload = json.loads(trace.read_text())
    gap_s, counts = payload["metadata"]["gap_seconds"], payload["data"]
    falls = [start + i * gap_s for i in range(1, len(counts)) if counts[i] < counts[i - 1]]
    expected = [moment for moment in falls if moment < end]
    assert expected  # the trace loses its instance within the two days
    assert world.notices[pool.index].tolist() == expected
    # Launches fail while the trace reads 0, and succeed while it reads more.
    for i in range(0, 2 * 86_400 // gap_s, 7):
        assert world.has_capacity(pool.index, start + i * gap_s + 1) == (counts[i] > 0)
    # Untraced pools are left out, or follow the calibrated world; an unknown pool is refused.
    assert world.excluded == {p.index for p in history.pools} - {pool.index}
    calibrated = draw_world(
        history,
        options=WorldOptions("traces", trace_set="", untraced="calibrated"),
        interruptions=model,
        **window,
    )
    assert not calibrated.excluded and len(calibrated.down) == len(history.pools)
    with pytest.raises(InputError, match=r"us-east-1z/p3\.2xlarge"):
        draw_world(
            history, options=WorldOptions("traces", trace_set=""),
            interruptions=InterruptionModel(traces={"us-east-1z/p3.2xlarge": trace}), **window,
        )  # fmt: skip
