"""Each format on small hand-made files: detection by content, the rows stored, provenance."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle import db
from oracle.errors import InputError
from oracle.importers import import_files
from oracle.models import (
    AvailabilityZoneModel,
    IngestRunModel,
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OfferingModel,
    OnDemandPriceModel,
    SpotPriceModel,
)
from tests.oracle.importers.helpers import write

MAPPING = {
    "AvailabilityZones": [
        {"ZoneName": "us-east-1a", "ZoneId": "use1-az6", "RegionName": "us-east-1"},
        {"ZoneName": "us-east-1b", "ZoneId": "use1-az1", "RegionName": "us-east-1"},
    ]
}
CLI_HISTORY = {
    "SpotPriceHistory": [
        {
            "AvailabilityZone": "us-east-1a",
            "InstanceType": "g5.xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.402100",
            "Timestamp": "2025-05-01T10:00:00.000Z",
        },
        {
            "AvailabilityZone": "us-east-1c",
            "InstanceType": "g5.xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.410000",
            "Timestamp": "2025-05-01T11:30:00+00:00",
        },
    ]
}


def _spot_rows(engine: Engine) -> list[tuple[object, ...]]:
    with db.transaction(engine) as session:
        return [
            tuple(row)
            for row in session.execute(
                sa.select(
                    SpotPriceModel.region,
                    SpotPriceModel.zone,
                    SpotPriceModel.availability_zone,
                    SpotPriceModel.availability_zone_id,
                    SpotPriceModel.timestamp,
                    SpotPriceModel.price_usd_per_hour,
                    SpotPriceModel.observed_at,
                    SpotPriceModel.source,
                    SpotPriceModel.source_detail,
                ).order_by(SpotPriceModel.timestamp)
            )
        ]


def test_aws_cli_json_resolves_az_names_through_the_mapping_imported_with_it(
    engine: Engine, tmp_path: Path
) -> None:
    # Given after the history: the mapping still goes first, so the names resolve.
    history = write(tmp_path / "history.json", json.dumps(CLI_HISTORY))
    mapping = write(tmp_path / "zones.json", json.dumps(MAPPING))
    results = import_files(engine, [history, mapping])

    assert [(r.kind, r.format, r.rows_read) for r in results] == [
        ("spot_price_history", "aws-cli-spot-price-history-json", 2),
        ("availability_zones", "aws-cli-describe-availability-zones", 2),
    ]
    assert results[0].rows_inserted == {"spot_prices": 2}
    first, second = datetime(2025, 5, 1, 10, tzinfo=UTC), datetime(2025, 5, 1, 11, 30, tzinfo=UTC)
    assert _spot_rows(engine) == [
        ("us-east-1", "use1-az6", "us-east-1a", "use1-az6", first, 0.4021, first, "file",
         str(history)),
        ("us-east-1", "us-east-1c", "us-east-1c", None, second, 0.41, second, "file",
         str(history)),
    ]  # fmt: skip
    with db.transaction(engine) as session:
        zones = session.scalars(sa.select(AvailabilityZoneModel.zone_id)).all()
        run_ids = session.scalars(sa.select(SpotPriceModel.ingest_run_id).distinct()).all()
    assert sorted(zones) == ["use1-az1", "use1-az6"]
    assert run_ids == [results[0].ingest_run_id]


def test_bare_list_and_camel_case_csv_are_the_same_history(engine: Engine, tmp_path: Path) -> None:
    bare = write(tmp_path / "bare.json", json.dumps(CLI_HISTORY["SpotPriceHistory"]))
    camel = write(
        tmp_path / "camel.txt",
        "Timestamp,AvailabilityZone,InstanceType,ProductDescription,SpotPrice\n"
        "2025-05-01T10:00:00Z,us-east-1a,g5.xlarge,Linux/UNIX,0.4021\n"
        "2025-05-01T11:30:00Z,us-east-1c,g5.xlarge,Linux/UNIX,0.41\n",
    )
    first, second = import_files(engine, [bare, camel])
    assert (first.format, second.format) == ("aws-cli-spot-price-history-json",
                                             "spot-price-history-csv")  # fmt: skip
    assert first.rows_inserted == {"spot_prices": 2}
    assert second.rows_inserted == {"spot_prices": 0}  # the same records: nothing new


def test_az_id_history_fills_the_az_name_from_a_stored_mapping(
    engine: Engine, tmp_path: Path
) -> None:
    import_files(engine, [write(tmp_path / "zones.json", json.dumps(MAPPING))])
    tsv = write(
        tmp_path / "ids.tsv",
        "az_id\tinstance_type\tproduct_description\tspot_price\ttimestamp\n"
        "use1-az1\tg4dn.xlarge\tLinux/UNIX\t0.1578\t2022-05-31T18:20:41+00:00\n"
        "apne1-az4\tg4dn.xlarge\tLinux/UNIX\t0.2000\t2022-05-31T18:20:41+00:00\n",
    )
    [result] = import_files(engine, [tsv])
    assert result.rows_inserted == {"spot_prices": 2}
    rows = {row[1]: row[:4] for row in _spot_rows(engine)}
    assert rows["use1-az1"] == ("us-east-1", "use1-az1", "us-east-1b", "use1-az1")
    assert rows["apne1-az4"] == ("ap-northeast-1", "apne1-az4", None, "apne1-az4")


def test_catalog_snapshot_rows(engine: Engine, tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "vms.csv",
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,"
        "Region,AvailabilityZone\n"
        "g5.xlarge,A10G,1,4,16,1.006,0.4021,us-east-1,use1-az1\n"
        "g5.xlarge,A10G,1,4,16,1.006,,us-east-1,use1-az2\n"
        "p5e.48xlarge,H200,8,192,2048,,14.9250,ap-southeast-3,apse3-az1\n",
    )
    observed = datetime(2025, 3, 1, tzinfo=UTC)
    [result] = import_files(engine, [catalog], observed_at=observed)
    # One on-demand price per (region, type); empty prices are facts not published.
    assert result.rows_inserted == {"on_demand_prices": 1, "spot_prices": 2, "offerings": 3}
    with db.transaction(engine) as session:
        on_demand = session.execute(
            sa.select(
                OnDemandPriceModel.region,
                OnDemandPriceModel.instance_type,
                OnDemandPriceModel.operating_system,
                OnDemandPriceModel.effective_date,
                OnDemandPriceModel.price_usd_per_hour,
            )
        ).all()
    assert [tuple(row) for row in on_demand] == [
        ("us-east-1", "g5.xlarge", "Linux", observed, 1.006)
    ]
    spot = _spot_rows(engine)
    assert {(row[1], row[4], row[5]) for row in spot} == {
        ("use1-az1", observed, 0.4021),
        ("apse3-az1", observed, 14.925),
    }


def test_on_demand_history_skips_empty_prices(engine: Engine, tmp_path: Path) -> None:
    history = write(
        tmp_path / "prices.csv",
        "timestamp,instance,price_usd\r\n"
        "2025-04-23T18:52:57,p5.48xlarge,98.32\r\n"
        "2025-04-01,p5.48xlarge,\r\n"
        "2025-06-05T07:00:00,p5.48xlarge,55.04\r\n",
    )
    [result] = import_files(engine, [history], region="us-west-2")
    assert result.rows_read == 3
    assert result.rows_inserted == {"on_demand_prices": 2}
    assert "1 rows with an empty price skipped" in result.notes
    with db.transaction(engine) as session:
        rows = session.execute(
            sa.select(
                OnDemandPriceModel.region,
                OnDemandPriceModel.effective_date,
                OnDemandPriceModel.price_usd_per_hour,
            ).order_by(OnDemandPriceModel.effective_date)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("us-west-2", datetime(2025, 4, 23, 18, 52, 57, tzinfo=UTC), 98.32),
        ("us-west-2", datetime(2025, 6, 5, 7, tzinfo=UTC), 55.04),
    ]


def test_offerings_by_region_az_name_and_az_id(engine: Engine, tmp_path: Path) -> None:
    header = "region,location,instance_type\n"
    files = [
        write(tmp_path / "zones.json", json.dumps(MAPPING)),
        write(tmp_path / "region.csv", header + "us-east-1,us-east-1,g5.xlarge\n"),
        write(tmp_path / "names.csv", header + "us-east-1,us-east-1a,g5.xlarge\n"),
        write(tmp_path / "ids.csv", header + "us-east-1,use1-az6,g5.xlarge\n"),
    ]
    results = import_files(engine, files)
    # The AZ name and the AZ ID are one zone once the mapping is known: one row, not two.
    assert [r.rows_inserted for r in results[1:]] == [
        {"offerings": 1}, {"offerings": 1}, {"offerings": 0}]  # fmt: skip
    with db.transaction(engine) as session:
        rows = session.execute(
            sa.select(
                OfferingModel.zone,
                OfferingModel.availability_zone,
                OfferingModel.availability_zone_id,
            ).order_by(OfferingModel.zone)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("us-east-1", None, None),
        ("use1-az6", "us-east-1a", "use1-az6"),
    ]


def test_instance_types_from_describe_instance_types_json(engine: Engine, tmp_path: Path) -> None:
    entries = {
        "InstanceTypes": [
            {
                "InstanceType": "g6f.large",
                "VCpuInfo": {"DefaultVCpus": 2},
                "MemoryInfo": {"SizeInMiB": 8192},
                "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
                "GpuInfo": {"Gpus": [{"Count": 0, "LogicalGpuCount": 1, "Name": "L4",
                                      "Manufacturer": "NVIDIA",
                                      "MemoryInfo": {"SizeInMiB": 2861}}]},
            },
            {
                "InstanceType": "trn1.2xlarge",
                "VCpuInfo": {"DefaultVCpus": 8},
                "MemoryInfo": {"SizeInMiB": 32768},
                "NeuronInfo": {"NeuronDevices": [{"Count": 1, "Name": "Trainium",
                                                  "MemoryInfo": {"SizeInMiB": 32768}}]},
            },
            {"InstanceType": "m5.large", "VCpuInfo": {"DefaultVCpus": 2},
             "MemoryInfo": {"SizeInMiB": 8192}},
        ]
    }  # fmt: skip
    path = write(tmp_path / "types.json", json.dumps(entries))
    [result] = import_files(engine, [path])
    assert (result.rows_read, result.rows_inserted) == (3, {"instance_types": 2})
    assert result.notes == ("1 types without GPUs or accelerators skipped",)
    with db.transaction(engine) as session:
        rows = session.execute(
            sa.select(
                InstanceTypeModel.instance_type,
                InstanceTypeModel.accelerator_name,
                InstanceTypeModel.accelerator_manufacturer,
                InstanceTypeModel.accelerator_count,
                InstanceTypeModel.accelerator_memory_mib_each,
                InstanceTypeModel.vcpus,
            ).order_by(InstanceTypeModel.instance_type)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("g6f.large", "L4", "NVIDIA", 1, 2861, 2),
        ("trn1.2xlarge", "Trainium", "AWS", 1, 32768, 8),
    ]


def test_undated_files_are_observed_at_their_modification_time(
    engine: Engine, tmp_path: Path
) -> None:
    advisor = {
        "ranges": [{"index": 0, "label": "<5%", "dots": 0, "max": 5},
                   {"index": 4, "label": ">20%", "dots": 4, "max": 100}],
        "spot_advisor": {"us-east-1": {"Linux": {"g5.xlarge": {"s": 70, "r": 4},
                                                 "m5.large": {"s": 50, "r": 0}}}},
    }  # fmt: skip
    path = write(tmp_path / "advisor.json", json.dumps(advisor))
    mtime = datetime(2025, 6, 28, 12, 0, tzinfo=UTC)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    [result] = import_files(engine, [path], now=datetime(2026, 1, 1, tzinfo=UTC))
    assert (result.observed_at, result.observed_at_from) == (mtime, "file modification time")
    assert (result.rows_read, result.rows_inserted) == (2, {"interruption_frequencies": 1})
    with db.transaction(engine) as session:
        row = session.scalars(sa.select(InterruptionFrequencyModel)).one()
        run = session.get(IngestRunModel, result.ingest_run_id)
    assert (row.instance_type, row.band_index, row.band_label, row.band_max_pct) == (
        "g5.xlarge", 4, ">20%", 100.0)  # fmt: skip
    assert (row.savings_pct, row.observed_at, row.source) == (70.0, mtime, "file")
    assert run is not None
    assert (run.source, run.kind, run.region, run.rows, run.status) == (
        "file", "spot_advisor", "us-east-1", 1, "ok")  # fmt: skip
    assert run.started_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert run.detail == f"{path} (observed_at {mtime.isoformat()} from file modification time)"


def test_a_trace_is_told_from_content_not_name(engine: Engine, tmp_path: Path) -> None:
    # Named like a price file; still read as the availability trace it is, whose pool must come
    # from a SkyPilot-style path, which this one lacks.
    content = '{"metadata": {"gap_seconds": 600}, "data": [0, 1]}'
    path = write(tmp_path / "spot_prices.csv", content)
    with pytest.raises(InputError, match="cannot tell the pool from the file name"):
        import_files(engine, [path])
