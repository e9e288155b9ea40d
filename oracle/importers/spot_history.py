"""Spot price history: the AWS CLI's describe-spot-price-history JSON, and CSV/TSV dumps of it.

Each record is an AWS change record (the price from its timestamp until the next record of the
same pool), stored as given: ``observed_at`` is the record's own timestamp. Zones may be AZ
names (``us-east-1a``) or AZ IDs (``use1-az4``); a pool's ``zone`` is the AZ ID when known.
"""

from __future__ import annotations

from typing import Any

from oracle.importers.base import (
    Batch,
    FileContext,
    Table,
    check_instance_type,
    check_text,
    parse_price,
    parse_timestamp,
    require,
)
from oracle.importers.zones import check_region
from oracle.models import SpotPriceModel

#: The CSV columns that may hold the zone (AZ name or AZ ID), in order of preference.
ZONE_COLUMNS = ("availability_zone_id", "az_id", "availability_zone", "az", "zone")
PRICE_COLUMNS = ("spot_price", "price_usd_per_hour", "price")
DEFAULT_PRODUCT = "Linux/UNIX"


def load_aws_cli_json(context: FileContext, payload: Any) -> Batch:
    """``{"SpotPriceHistory": [...]}`` (or the bare list) as the AWS CLI prints it."""
    key = "SpotPriceHistory"
    records = payload[key] if isinstance(payload, dict) else payload
    prefix = key if isinstance(payload, dict) else ""
    batch = context.batch()
    batch.expect(SpotPriceModel)
    for index, record in enumerate(records):
        with context.at(f"{prefix}[{index}]"):
            if not isinstance(record, dict):
                context.fail(f"{prefix}[{index}]", "expected an object with SpotPrice")
            zone_text = record.get("AvailabilityZoneId") or require(record, "AvailabilityZone")
            batch.add(
                SpotPriceModel,
                spot_row(
                    context,
                    batch,
                    zone_text=str(zone_text),
                    instance_type=require(record, "InstanceType"),
                    product_description=record.get("ProductDescription") or DEFAULT_PRODUCT,
                    timestamp_text=str(require(record, "Timestamp")),
                    price_text=require(record, "SpotPrice"),
                ),
            )
        batch.rows_read += 1
    if batch.rows_read == 0:
        context.fail(None, "the spot price history holds no records; export a non-empty one")
    return batch


def load_csv(context: FileContext, table: Table) -> Batch:
    """A CSV or TSV with timestamp, zone, instance type, product description and price columns."""
    zone_column = next(name for name in ZONE_COLUMNS if name in table.columns)
    price_column = next(name for name in PRICE_COLUMNS if name in table.columns)
    has_product = "product_description" in table.columns
    has_region = "region" in table.columns
    batch = context.batch()
    batch.expect(SpotPriceModel)
    for line, record in table.records(context):
        with context.at(line):
            batch.add(
                SpotPriceModel,
                spot_row(
                    context,
                    batch,
                    zone_text=record[zone_column],
                    region=record["region"] or None if has_region else None,
                    instance_type=record["instance_type"],
                    product_description=record["product_description"]
                    if has_product
                    else DEFAULT_PRODUCT,
                    timestamp_text=record["timestamp"],
                    price_text=record[price_column],
                ),
            )
        batch.rows_read += 1
    if not has_product:
        batch.notes.append(f"no product_description column: rows stored as {DEFAULT_PRODUCT}")
    return batch


def spot_row(
    context: FileContext,
    batch: Batch,
    *,
    zone_text: str,
    instance_type: Any,
    region: str | None = None,
    product_description: str,
    timestamp_text: str,
    price_text: Any,
) -> dict[str, Any]:
    """One spot_prices row; raises BadValue/ZoneError on a bad field."""
    zone = context.zones.resolve(zone_text, region=region and check_region(region))
    timestamp = parse_timestamp(timestamp_text)
    batch.regions.add(zone.region)
    return {
        "region": zone.region,
        "zone": zone.zone,
        "availability_zone": zone.availability_zone,
        "availability_zone_id": zone.availability_zone_id,
        "instance_type": check_instance_type(instance_type),
        "product_description": check_text(
            product_description, name="product description", max_chars=64
        )
        or DEFAULT_PRODUCT,
        "timestamp": timestamp,
        "price_usd_per_hour": parse_price(price_text, name="spot price"),
        "source": "file",
        "source_detail": context.source_detail,
        "observed_at": timestamp,
        "ingest_run_id": context.ingest_run_id,
    }
