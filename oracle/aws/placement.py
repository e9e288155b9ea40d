"""GetSpotPlacementScores, at AZ level and at region level, for groups of comparable types.

AWS advises asking about at least three instance types per query: with one or two (or variations
of one type) the score is always low. A query mixes types, so its score means "N instances of
any of these", which is only useful when the types are interchangeable for serving. Grouping
(:func:`group_instance_types`), most to least alike, each level taking only buckets that still
hold at least three types:

1. same accelerator model and count (g5.xlarge, g5.2xlarge, g5.4xlarge: one A10G each);
2. same accelerator model (any count);
3. same accelerator manufacturer;
4. what is left (fewer than three types of a manufacturer) is padded with the types nearest in
   total accelerator memory, so that every query still asks about three.

A bucket is cut into chunks of about ``types_per_query`` types (never under three, never over
ten), in order of total accelerator memory then vCPUs. The grouping is deterministic, so repeated
syncs ask the same configurations again (AWS limits how many *new* configurations an account may
ask about in a period). A score is stored for the exact set asked about.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from math import ceil
from typing import Any

from oracle.aws.instance_types import InstanceTypeSpec

MIN_TYPES_PER_QUERY = 3
#: Kept well under the API's own list limit; AWS counts each distinct set as a configuration.
MAX_TYPES_PER_QUERY = 10


@dataclass(frozen=True)
class PlacementScore:
    region: str
    #: The AZ ID for an AZ-level score; None for a region-level score.
    availability_zone_id: str | None
    instance_types: tuple[str, ...]
    target_capacity: int
    score: int


def group_instance_types(
    specs: Sequence[InstanceTypeSpec], *, types_per_query: int = MIN_TYPES_PER_QUERY
) -> list[tuple[str, ...]]:
    """Groups of comparable types to ask about together (see the module docstring)."""
    size = min(max(types_per_query, MIN_TYPES_PER_QUERY), MAX_TYPES_PER_QUERY)
    ordered = sorted(set(specs), key=_order)
    if len(ordered) <= MIN_TYPES_PER_QUERY:
        return [tuple(sorted(spec.instance_type for spec in ordered))] if ordered else []
    keys: list[Callable[[InstanceTypeSpec], Hashable]] = [
        lambda spec: (spec.accelerator_name, spec.accelerator_count),
        lambda spec: spec.accelerator_name,
        lambda spec: spec.accelerator_manufacturer,
    ]
    groups: list[tuple[str, ...]] = []
    left = ordered
    for key in keys:
        buckets: dict[Hashable, list[InstanceTypeSpec]] = defaultdict(list)
        for spec in left:
            buckets[key(spec)].append(spec)
        left = []
        for members in buckets.values():
            if len(members) >= MIN_TYPES_PER_QUERY:
                groups.extend(_chunks(members, size))
            else:
                left.extend(members)
    for spec in sorted(left, key=_order):
        groups.append(_padded(spec, ordered))
    return sorted(set(groups))


def get_spot_placement_scores(
    ec2: Any,
    *,
    region: str,
    instance_types: Sequence[str],
    target_capacity: int,
    single_availability_zone: bool,
) -> list[PlacementScore]:
    """Scores (1-10) of ``instance_types`` for ``target_capacity`` instances in ``region``."""
    asked = tuple(sorted(instance_types))
    paginator = ec2.get_paginator("get_spot_placement_scores")
    pages = paginator.paginate(
        InstanceTypes=list(asked),
        TargetCapacity=target_capacity,
        TargetCapacityUnitType="units",
        SingleAvailabilityZone=single_availability_zone,
        RegionNames=[region],
    )
    scores = []
    for page in pages:
        for item in page.get("SpotPlacementScores", []):
            if item.get("Region", region) != region:
                continue
            scores.append(
                PlacementScore(
                    region=region,
                    availability_zone_id=(
                        item.get("AvailabilityZoneId") if single_availability_zone else None
                    ),
                    instance_types=asked,
                    target_capacity=target_capacity,
                    score=int(item["Score"]),
                )
            )
    return scores


def _order(spec: InstanceTypeSpec) -> tuple[int, int, str]:
    return spec.accelerator_memory_mib_total, spec.vcpus, spec.instance_type


def _chunks(members: list[InstanceTypeSpec], size: int) -> list[tuple[str, ...]]:
    """Cut ``members`` (at least three) into near-equal runs of 3 to 10 types."""
    count = max(len(members) // size, ceil(len(members) / MAX_TYPES_PER_QUERY), 1)
    count = min(count, len(members) // MIN_TYPES_PER_QUERY)
    chunks = []
    start = 0
    for index in range(count):
        end = start + len(members) // count + (1 if index < len(members) % count else 0)
        chunks.append(tuple(sorted(spec.instance_type for spec in members[start:end])))
        start = end
    return chunks


def _padded(spec: InstanceTypeSpec, every: list[InstanceTypeSpec]) -> tuple[str, ...]:
    """``spec`` with the types nearest to it in total accelerator memory, three in all."""
    others = sorted(
        (other for other in every if other != spec),
        key=lambda other: (
            abs(other.accelerator_memory_mib_total - spec.accelerator_memory_mib_total),
            other.accelerator_manufacturer != spec.accelerator_manufacturer,
            _order(other),
        ),
    )
    chosen = [spec, *others[: MIN_TYPES_PER_QUERY - 1]]
    return tuple(sorted(other.instance_type for other in chosen))
