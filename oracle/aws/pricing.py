"""On-demand prices from the Pricing API (GetProducts; service AmazonEC2).

Each PriceList entry is a JSON string: ``product.attributes`` says what it is, and
``terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD`` is the hourly price from
``effectiveDate``. The filters pin one product per (region, type): Linux, shared tenancy, used
capacity (not reservations), no pre-installed software.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class OnDemandPrice:
    region: str
    instance_type: str
    operating_system: str
    effective_date: datetime
    price_usd_per_hour: float


def get_on_demand_price(
    pricing: Any, *, region: str, instance_type: str, operating_system: str = "Linux"
) -> OnDemandPrice | None:
    """The current on-demand price of ``instance_type`` in ``region``, or None if unlisted.

    Should several products remain after the filters (AWS adds attributes over time, such as
    market options), the one with the newest effective date wins, then the lowest price.
    """
    filters = [
        {"Type": "TERM_MATCH", "Field": field, "Value": value}
        for field, value in (
            ("instanceType", instance_type),
            ("regionCode", region),
            ("operatingSystem", operating_system),
            ("tenancy", "Shared"),
            ("capacitystatus", "Used"),
            ("preInstalledSw", "NA"),
        )
    ]
    paginator = pricing.get_paginator("get_products")
    prices: list[OnDemandPrice] = []
    for page in paginator.paginate(
        ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"
    ):
        for text in page.get("PriceList", []):
            prices.extend(
                parse_price_list_item(text, region=region, operating_system=operating_system)
            )
    if not prices:
        return None
    return max(prices, key=lambda price: (price.effective_date, -price.price_usd_per_hour))


def parse_price_list_item(
    text: str | dict[str, Any], *, region: str, operating_system: str
) -> list[OnDemandPrice]:
    """The hourly on-demand prices in one PriceList entry (zero prices left out)."""
    item = json.loads(text) if isinstance(text, str) else text
    attributes = item.get("product", {}).get("attributes", {})
    instance_type = attributes.get("instanceType")
    if not instance_type or attributes.get("marketoption", "OnDemand") != "OnDemand":
        return []
    prices = []
    for offer in item.get("terms", {}).get("OnDemand", {}).values():
        effective = _parse_time(offer.get("effectiveDate"))
        for dimension in offer.get("priceDimensions", {}).values():
            if dimension.get("unit") not in ("Hrs", "Hours"):
                continue
            usd = float(dimension.get("pricePerUnit", {}).get("USD", "0") or 0)
            if usd > 0:
                prices.append(
                    OnDemandPrice(
                        region=attributes.get("regionCode", region),
                        instance_type=instance_type,
                        operating_system=attributes.get("operatingSystem", operating_system),
                        effective_date=effective,
                        price_usd_per_hour=usd,
                    )
                )
    return prices


def _parse_time(text: str | None) -> datetime:
    if not text:
        return datetime(1970, 1, 1, tzinfo=UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
