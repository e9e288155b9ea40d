"""DescribeSpotPriceHistory through its paginator.

AWS answers with change records: each price holds from its timestamp until the next record of
the same pool, and the answer also holds the last change before ``StartTime`` (the price in force
when the window opens). Re-asking from a stored watermark therefore returns that record again;
the store's unique key (region, zone, type, product description, timestamp) drops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Instance types per request, to keep each request's query string short.
TYPES_PER_REQUEST = 50


@dataclass(frozen=True)
class SpotPriceRecord:
    availability_zone: str
    instance_type: str
    product_description: str
    timestamp: datetime
    price_usd_per_hour: float


def describe_spot_price_history(
    ec2: Any,
    *,
    instance_types: Sequence[str],
    product_description: str,
    start: datetime,
    end: datetime,
) -> list[SpotPriceRecord]:
    """Every change record of ``instance_types`` between ``start`` and ``end`` in the region."""
    records: list[SpotPriceRecord] = []
    ordered = sorted(set(instance_types))
    paginator = ec2.get_paginator("describe_spot_price_history")
    for first in range(0, len(ordered), TYPES_PER_REQUEST):
        pages = paginator.paginate(
            InstanceTypes=ordered[first : first + TYPES_PER_REQUEST],
            ProductDescriptions=[product_description],
            StartTime=start,
            EndTime=end,
        )
        for page in pages:
            records.extend(_record(item) for item in page.get("SpotPriceHistory", []))
    return records


def _record(item: dict[str, Any]) -> SpotPriceRecord:
    timestamp = item["Timestamp"]
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return SpotPriceRecord(
        availability_zone=item["AvailabilityZone"],
        instance_type=item["InstanceType"],
        product_description=item["ProductDescription"],
        timestamp=timestamp.astimezone(UTC),
        price_usd_per_hour=float(item["SpotPrice"]),
    )
