"""Regions and availability zones: which region an AZ name or AZ ID belongs to.

An AZ name (``us-east-1a``) is its region plus a zone letter; an AZ ID (``use1-az4``) starts with
a short code of its region. AZ names map to different physical zones in different accounts, so
an AZ name's AZ ID is only known from an account's own mapping: the ``availability_zones`` table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from oracle.models import AvailabilityZoneModel
from oracle.timerange import shorten

# The public AWS regions and the prefix of their AZ IDs. Sources: the AWS documentation's list
# of Regions (docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html) and
# "AZ IDs for your AWS resources"
# (docs.aws.amazon.com/ram/latest/userguide/working-with-az-ids.html);
# the prefixes of the 29 regions in moto 5.2.5's availability-zone-id offerings and in the
# SkyPilot AWS catalog agree with this table (checked by the tests on those files).
AZ_ID_PREFIXES: dict[str, str] = {
    "use1": "us-east-1",
    "use2": "us-east-2",
    "usw1": "us-west-1",
    "usw2": "us-west-2",
    "afs1": "af-south-1",
    "ape1": "ap-east-1",
    "ape2": "ap-east-2",
    "aps1": "ap-south-1",
    "aps2": "ap-south-2",
    "apse1": "ap-southeast-1",
    "apse2": "ap-southeast-2",
    "apse3": "ap-southeast-3",
    "apse4": "ap-southeast-4",
    "apse5": "ap-southeast-5",
    "apse6": "ap-southeast-6",
    "apse7": "ap-southeast-7",
    "apne1": "ap-northeast-1",
    "apne2": "ap-northeast-2",
    "apne3": "ap-northeast-3",
    "cac1": "ca-central-1",
    "caw1": "ca-west-1",
    "euc1": "eu-central-1",
    "euc2": "eu-central-2",
    "euw1": "eu-west-1",
    "euw2": "eu-west-2",
    "euw3": "eu-west-3",
    "eus1": "eu-south-1",
    "eus2": "eu-south-2",
    "eun1": "eu-north-1",
    "ilc1": "il-central-1",
    "mec1": "me-central-1",
    "mes1": "me-south-1",
    "mxc1": "mx-central-1",
    "sae1": "sa-east-1",
    "usgw1": "us-gov-west-1",
    "usge1": "us-gov-east-1",
    "cnn1": "cn-north-1",
    "cnnw1": "cn-northwest-1",
}

#: Every region the importers accept.
KNOWN_REGIONS: frozenset[str] = frozenset(AZ_ID_PREFIXES.values())

#: The longest AZ name or ID stored (the zone columns are VARCHAR(32)).
MAX_ZONE_CHARS = 32
_AZ_ID = re.compile(r"^(?P<prefix>[a-z]+\d+)-(?:[a-z]+\d+-)?az\d+$")
# us-east-1a, and Local Zones such as us-east-1-bos-1a.
_AZ_NAME = re.compile(r"^(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)(?:-[a-z]+-\d+)?[a-z]$")


class ZoneError(ValueError):
    """A zone or region that is not recognised (the message says how to fix it)."""


@dataclass(frozen=True)
class Zone:
    """Where a spot pool is: ``zone`` is the AZ ID when known, else the AZ name."""

    region: str
    zone: str
    availability_zone: str | None
    availability_zone_id: str | None


def is_az_id(text: str) -> bool:
    return len(text) <= MAX_ZONE_CHARS and _AZ_ID.match(text) is not None


def check_region(region: str) -> str:
    if region not in KNOWN_REGIONS:
        raise ZoneError(
            f"unknown region {shorten(region)}; use an AWS region name such as us-east-1 "
            "(known regions are listed in oracle/importers/zones.py)"
        )
    return region


def region_of_az_name(name: str) -> str:
    """``us-east-1a`` -> ``us-east-1``; raises :class:`ZoneError` for anything else."""
    match = _AZ_NAME.match(name) if len(name) <= MAX_ZONE_CHARS else None
    if match is None or match["region"] not in KNOWN_REGIONS:
        raise ZoneError(
            f"unknown availability zone {shorten(name)}; use an AZ name such as us-east-1a "
            "or an AZ ID such as use1-az4"
        )
    return match["region"]


def region_of_az_id(zone_id: str) -> str:
    """``use1-az4`` -> ``us-east-1``, ``apne1-az1`` -> ``ap-northeast-1``."""
    match = _AZ_ID.match(zone_id) if len(zone_id) <= MAX_ZONE_CHARS else None
    if match is None or match["prefix"] not in AZ_ID_PREFIXES:
        raise ZoneError(
            f"unknown availability zone ID {shorten(zone_id)}; use an AZ ID such as use1-az4 "
            "(known prefixes are listed in oracle/importers/zones.py)"
        )
    return AZ_ID_PREFIXES[match["prefix"]]


class ZoneDirectory:
    """The AZ name <-> AZ ID mapping known to the database, plus what this import adds."""

    def __init__(self) -> None:
        self._id_by_name: dict[str, str] = {}
        self._name_by_id: dict[str, str] = {}
        # Zones already resolved: a file names a few hundred zones over millions of rows.
        self._resolved: dict[tuple[str, str | None], Zone] = {}

    @classmethod
    def load(cls, session: Session) -> ZoneDirectory:
        directory = cls()
        rows = session.execute(
            select(AvailabilityZoneModel.zone_id, AvailabilityZoneModel.zone_name)
        )
        for zone_id, zone_name in rows:
            directory.add(zone_id=zone_id, zone_name=zone_name)
        return directory

    def add(self, *, zone_id: str, zone_name: str) -> None:
        # The first mapping stored wins, as insert-ignore keeps the first row of a zone ID.
        self._name_by_id.setdefault(zone_id, zone_name)
        self._id_by_name.setdefault(zone_name, zone_id)
        self._resolved.clear()

    def resolve(self, text: str, *, region: str | None = None) -> Zone:
        """The zone named by an AZ name or AZ ID; ``region``, when given, must match."""
        known = self._resolved.get((text, region))
        if known is not None:
            return known
        zone = self._resolve(text, region=region)
        if len(self._resolved) >= 10_000:  # bounded, whatever the file names
            self._resolved.clear()
        self._resolved[(text, region)] = zone
        return zone

    def _resolve(self, text: str, *, region: str | None) -> Zone:
        text = text.strip()
        if is_az_id(text):
            zone_region = region_of_az_id(text)
            zone = Zone(zone_region, text, self._name_by_id.get(text), text)
        else:
            zone_region = region_of_az_name(text)
            zone_id = self._id_by_name.get(text)
            zone = Zone(zone_region, zone_id or text, text, zone_id)
        if region is not None and region != zone_region:
            raise ZoneError(
                f"availability zone {shorten(text)} is in {zone_region}, not in {region}; "
                "fix the region or the zone"
            )
        return zone
