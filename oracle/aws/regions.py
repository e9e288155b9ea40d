"""Regions enabled for the account and each region's AZ name-to-ID map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: OptInStatus values of regions the account can use.
ENABLED_STATUSES = ("opt-in-not-required", "opted-in")


@dataclass(frozen=True)
class RegionInfo:
    region: str
    opt_in_status: str

    @property
    def enabled(self) -> bool:
        return self.opt_in_status in ENABLED_STATUSES


@dataclass(frozen=True)
class AvailabilityZone:
    zone_name: str
    zone_id: str
    region: str


def describe_regions(ec2: Any) -> list[RegionInfo]:
    """Every region AWS lists, enabled or not (DescribeRegions with AllRegions)."""
    response = ec2.describe_regions(AllRegions=True)
    regions = [
        RegionInfo(item["RegionName"], item.get("OptInStatus", "opt-in-not-required"))
        for item in response.get("Regions", [])
    ]
    return sorted(regions, key=lambda info: info.region)


def describe_availability_zones(ec2: Any, region: str) -> list[AvailabilityZone]:
    """The region's availability zones (Local and Wavelength Zones left out)."""
    response = ec2.describe_availability_zones()
    zones = [
        AvailabilityZone(item["ZoneName"], item["ZoneId"], item.get("RegionName", region))
        for item in response.get("AvailabilityZones", [])
        if item.get("ZoneType", "availability-zone") == "availability-zone"
    ]
    return sorted(zones, key=lambda zone: zone.zone_name)
