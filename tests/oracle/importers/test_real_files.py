"""Every real price and catalog file in ../shared/data imports; traces and benchmarks are
refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle import db
from oracle.errors import InputError
from oracle.importers import import_files
from oracle.models import IngestRunModel, OnDemandPriceModel, SpotPriceModel
from tests.oracle.importers.helpers import row_counts

#: Each price or catalog file: (kind, rows read).
PRICE_FILES = {
    "skypilot-catalog/aws_gpu_vms_snapshot_27f67dd.csv": ("skypilot_catalog", 805),
    "amorton45-p5-ondemand/gpu_prices.csv": ("on_demand_history", 500),
    "moto-ec2/offerings_accelerated_availability_zone_id.csv": ("offerings", 2541),
    "moto-ec2/offerings_accelerated_availability_zone.csv": ("offerings", 2541),
    "moto-ec2/offerings_accelerated_region.csv": ("offerings", 1008),
    "moto-ec2/instance_types_accelerated.json": ("instance_types", 79),
    "moto-ec2/instance_types_accelerated.csv": ("instance_types", 79),
    "spotinfo-advisor/spot-advisor-data.json": ("spot_advisor", 25323),
    "spotinfo-advisor/spot_advisor_gpu.csv": ("spot_advisor", 1428),
    "lucianamarques-spot-history/sa-east-1_2019-12-31_2020-03-29_g4dn.csv": (
        "spot_price_history", 5606),
    "lucianamarques-spot-history/sa-east-1_2020-03-31_2020-06-22_g4dn.csv": (
        "spot_price_history", 4650),
    "lucianamarques-spot-history/us-east-1_2021-03-02_2021-05-31_gpu.csv": (
        "spot_price_history", 22098),
    "ericpauley-spot-history/2022-05-31_gpu.tsv": ("spot_price_history", 1834),
}  # fmt: skip
NOT_PRICE_DIRS = {"skypilot-spot-traces": "scheduler backtest", "llm-price-compass": "bench import"}
DATA_SUFFIXES = (".csv", ".tsv", ".json")


def test_every_data_file_is_listed(shared_data: Path) -> None:
    """A new data file must be classed here as price data or as refused."""
    found = {
        str(path.relative_to(shared_data))
        for path in shared_data.rglob("*")
        if path.suffix in DATA_SUFFIXES and path.parts[len(shared_data.parts)] not in NOT_PRICE_DIRS
    }
    assert found == set(PRICE_FILES)


def test_all_real_files_import_in_one_go_and_again_add_nothing(
    engine: Engine, shared_data: Path
) -> None:
    paths = [shared_data / relative for relative in PRICE_FILES]
    results = import_files(engine, paths)

    assert [(r.kind, r.rows_read) for r in results] == list(PRICE_FILES.values())
    assert [r.path for r in results] == [str(path) for path in paths]
    spot_files = sum(r.rows_read for r in results if r.kind == "spot_price_history")
    skypilot = results[0]
    counts = row_counts(engine)
    # Every history record is stored; the catalog adds one spot row per AZ with a spot price.
    assert counts["spot_prices"] == spot_files + skypilot.rows_inserted["spot_prices"] == 34958
    assert skypilot.rows_inserted["spot_prices"] == 770
    assert results[1].rows_inserted == {"on_demand_prices": 487}  # 13 empty prices skipped
    assert counts["instance_types"] == 79
    assert counts["ingest_runs"] == len(paths)
    with db.transaction(engine) as session:
        runs = session.scalars(sa.select(IngestRunModel)).all()
        assert {(run.source, run.status) for run in runs} == {("file", "ok")}
        assert {run.id for run in runs} == {r.ingest_run_id for r in results}
        sources = session.execute(
            sa.select(SpotPriceModel.source, SpotPriceModel.source_detail).distinct()
        ).all()
        assert {source for source, _ in sources} == {"file"}
        assert {detail for _, detail in sources} == {
            str(shared_data / relative)
            for relative, (kind, _) in PRICE_FILES.items()
            if kind in ("spot_price_history", "skypilot_catalog")
        }

    again = import_files(engine, paths)
    assert all(count == 0 for r in again for count in r.rows_inserted.values())
    assert row_counts(engine) == {**counts, "ingest_runs": 2 * len(paths)}


def test_ericpauley_zones_are_az_ids_and_named_from_the_mapping(
    engine: Engine, shared_data: Path, tmp_path: Path
) -> None:
    mapping = tmp_path / "zones.json"
    mapping.write_text(
        '{"AvailabilityZones": [{"ZoneName": "eu-west-3b", "ZoneId": "euw3-az2",'
        ' "RegionName": "eu-west-3"}]}'
    )
    import_files(engine, [shared_data / "ericpauley-spot-history/2022-05-31_gpu.tsv", mapping])
    with db.transaction(engine) as session:
        rows = session.execute(
            sa.select(
                SpotPriceModel.region,
                SpotPriceModel.zone,
                SpotPriceModel.availability_zone,
                SpotPriceModel.price_usd_per_hour,
            ).where(
                SpotPriceModel.instance_type == "g4dn.4xlarge",
                SpotPriceModel.product_description == "Linux/UNIX",
                SpotPriceModel.timestamp == datetime(2022, 5, 31, 18, 20, 41, tzinfo=UTC),
            )
        ).all()
    # The file's first record: euw3-az2 g4dn.4xlarge Linux/UNIX 0.466400.
    assert ("eu-west-3", "euw3-az2", "eu-west-3b", 0.4664) in rows


def test_catalog_and_on_demand_history_prices(engine: Engine, shared_data: Path) -> None:
    catalog = shared_data / "skypilot-catalog/aws_gpu_vms_snapshot_27f67dd.csv"
    # The catalog is from about Dec 2024 - early Jun 2025 (SOURCES.md); say so, or its
    # pre-cut prices would look as new as the file's modification time.
    built = datetime(2025, 3, 1, tzinfo=UTC)
    results = import_files(
        engine, [catalog, shared_data / "amorton45-p5-ondemand/gpu_prices.csv"], observed_at=built
    )
    assert (results[0].observed_at, results[0].observed_at_from) == (built, "--observed-at")
    assert (results[1].observed_at, results[1].observed_at_from) == (None, None)
    with db.transaction(engine) as session:
        prices = session.execute(
            sa.select(OnDemandPriceModel.effective_date, OnDemandPriceModel.price_usd_per_hour)
            .where(
                OnDemandPriceModel.region == "us-east-1",
                OnDemandPriceModel.instance_type == "p5.48xlarge",
            )
            .order_by(OnDemandPriceModel.effective_date)
        ).all()
    by_day = {when.date().isoformat(): price for when, price in prices}
    assert by_day["2025-03-01"] == 98.32  # the catalog's list price, before the cut
    # The June-2025 P-family price cut, as the tracker recorded it.
    assert by_day["2025-04-23"] == 98.32
    assert by_day["2025-06-05"] == 55.04
    assert prices[-1] == (datetime(2026, 8, 22, 7, 34, 47, tzinfo=UTC), 55.04)


def test_catalog_without_observed_at_is_observed_at_its_modification_time(
    engine: Engine, shared_data: Path
) -> None:
    catalog = shared_data / "skypilot-catalog/aws_gpu_vms_snapshot_27f67dd.csv"
    [result] = import_files(engine, [catalog])
    mtime = datetime.fromtimestamp(catalog.stat().st_mtime, tz=UTC)
    assert (result.observed_at, result.observed_at_from) == (mtime, "file modification time")
    with db.transaction(engine) as session:
        times = set(session.scalars(sa.select(SpotPriceModel.timestamp).distinct()))
        run = session.get(IngestRunModel, result.ingest_run_id)
    assert times == {mtime}
    assert run is not None and "from file modification time" in run.detail


def test_time_weighted_mean_of_p3dn_in_2021_checked_by_hand(
    engine: Engine, shared_data: Path
) -> None:
    """p3dn.24xlarge, us-east-1a, Linux/UNIX: 309 change records from 2021-03-02 15:45:49 to the
    file's last timestamp, 2021-05-31 00:20:34. Worked out by hand from the CSV (pandas, each
    price weighted by the seconds until the next record): 10.4032 $/h, against a plain mean of
    the records of 10.5478."""
    history = "lucianamarques-spot-history/us-east-1_2021-03-02_2021-05-31_gpu.csv"
    import_files(engine, [shared_data / history])
    with db.transaction(engine) as session:
        steps = session.execute(
            sa.select(SpotPriceModel.timestamp, SpotPriceModel.price_usd_per_hour)
            .where(
                SpotPriceModel.region == "us-east-1",
                SpotPriceModel.zone == "us-east-1a",
                SpotPriceModel.instance_type == "p3dn.24xlarge",
                SpotPriceModel.product_description == "Linux/UNIX",
            )
            .order_by(SpotPriceModel.timestamp)
        ).all()
    end = datetime(2021, 5, 31, 0, 20, 34, tzinfo=UTC)
    assert len(steps) == 309
    assert steps[0] == (datetime(2021, 3, 2, 15, 45, 49, tzinfo=UTC), 9.3636)
    bounds = [when for when, _ in steps[1:]] + [end]
    weighted = sum(
        price * (until - when).total_seconds()
        for (when, price), until in zip(steps, bounds, strict=True)
    )
    mean = weighted / (end - steps[0].timestamp).total_seconds()
    assert mean == pytest.approx(10.4032, abs=5e-5)


def _refused_files(shared_data: Path) -> list[Path]:
    return sorted(
        path
        for directory in NOT_PRICE_DIRS
        for path in (shared_data / directory).rglob("*")
        if path.suffix in DATA_SUFFIXES and "availability" not in path.parts
    )


def test_traces_and_benchmarks_are_refused_with_the_command_that_handles_them(
    make_database: Callable[[str], str], shared_data: Path
) -> None:
    engine = db.make_engine(make_database("sqlite"))
    # Availability traces import as pool observations (tests/oracle/importers/test_traces.py).
    refused = _refused_files(shared_data)
    assert len(refused) == 11
    for path in refused:
        directory = path.relative_to(shared_data).parts[0]
        with pytest.raises(InputError) as caught:
            import_files(engine, [path])
        message = str(caught.value)
        assert message.startswith(f"{path}: this is a ")
        assert "not price data" in message
        assert NOT_PRICE_DIRS[directory] in message
    assert row_counts(engine)["ingest_runs"] == 0
    engine.dispose()
