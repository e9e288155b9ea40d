"""Region of an AZ name or AZ ID, and the table of AZ-ID prefixes checked against real files."""

from __future__ import annotations

import csv
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.importers.zones import (
    AZ_ID_PREFIXES,
    KNOWN_REGIONS,
    ZoneDirectory,
    ZoneError,
    region_of_az_id,
    region_of_az_name,
)


@pytest.mark.parametrize(
    ("zone_id", "region"),
    [
        ("use1-az4", "us-east-1"),
        ("apne1-az1", "ap-northeast-1"),
        ("euw3-az2", "eu-west-3"),
        ("use1-bos1-az1", "us-east-1"),
    ],
)
def test_region_of_az_id(zone_id: str, region: str) -> None:
    assert region_of_az_id(zone_id) == region


@pytest.mark.parametrize(
    ("name", "region"),
    [("us-east-1a", "us-east-1"), ("ap-northeast-1c", "ap-northeast-1"),
     ("us-east-1-bos-1a", "us-east-1"), ("il-central-1b", "il-central-1")],
)  # fmt: skip
def test_region_of_az_name(name: str, region: str) -> None:
    assert region_of_az_name(name) == region


@pytest.mark.parametrize("name", ["xx-east-1a", "us-east-9a", "us-east-1", "use1-az4", ""])
def test_unknown_az_name_is_refused(name: str) -> None:
    with pytest.raises(ZoneError, match="unknown availability zone"):
        region_of_az_name(name)


@pytest.mark.parametrize("zone_id", ["zz1-az1", "use1", "use1-zz1", "us-east-1a"])
def test_unknown_az_id_is_refused(zone_id: str) -> None:
    with pytest.raises(ZoneError, match="unknown availability zone ID"):
        region_of_az_id(zone_id)


@given(st.sampled_from(sorted(AZ_ID_PREFIXES)), st.integers(min_value=1, max_value=99))
def test_every_prefix_maps_to_its_region(prefix: str, number: int) -> None:
    assert region_of_az_id(f"{prefix}-az{number}") == AZ_ID_PREFIXES[prefix]


@given(st.sampled_from(sorted(KNOWN_REGIONS)), st.sampled_from(string.ascii_lowercase))
def test_az_name_is_region_plus_letter(region: str, letter: str) -> None:
    assert region_of_az_name(region + letter) == region


@pytest.mark.parametrize(
    ("relative", "region_column", "zone_column"),
    [
        ("moto-ec2/offerings_accelerated_availability_zone_id.csv", "region", "location"),
        ("moto-ec2/offerings_accelerated_availability_zone.csv", "region", "location"),
        ("skypilot-catalog/aws_gpu_vms_snapshot_27f67dd.csv", "Region", "AvailabilityZone"),
    ],
)
def test_prefix_table_agrees_with_real_files(
    shared_data: Path, relative: str, region_column: str, zone_column: str
) -> None:
    with (shared_data / relative).open() as handle:
        pairs = {(row[region_column], row[zone_column]) for row in csv.DictReader(handle)}
    assert len(pairs) > 50
    for region, zone in pairs:
        found = region_of_az_id(zone) if zone[-1].isdigit() else region_of_az_name(zone)
        assert found == region, zone


def test_directory_fills_the_other_half_of_a_zone() -> None:
    directory = ZoneDirectory()
    directory.add(zone_id="use1-az6", zone_name="us-east-1a")
    by_name = directory.resolve("us-east-1a")
    assert (by_name.zone, by_name.availability_zone_id) == ("use1-az6", "use1-az6")
    by_id = directory.resolve("use1-az6")
    assert (by_id.zone, by_id.availability_zone) == ("use1-az6", "us-east-1a")
    unknown = directory.resolve("us-east-1b")
    assert (unknown.zone, unknown.availability_zone_id) == ("us-east-1b", None)
    with pytest.raises(ZoneError, match="is in us-east-1, not in us-west-2"):
        directory.resolve("use1-az6", region="us-west-2")
