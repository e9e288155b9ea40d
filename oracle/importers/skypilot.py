"""The SkyPilot AWS catalog (``vms.csv``): on-demand prices per region, spot snapshot per AZ ID.

The catalog carries no date. Its facts are observed at the snapshot time: ``--observed-at``,
else the file's modification time (the output and the ingest run say which). Each spot price
becomes one spot_prices change record at that time (product Linux/UNIX), each on-demand price an
on_demand_prices row effective then, and each row an offering of the type in that AZ.
An empty Price or SpotPrice means the catalog publishes none: that fact is skipped.
"""

from __future__ import annotations

from typing import Any

from oracle.importers.base import Batch, FileContext, Table, check_instance_type, parse_price
from oracle.importers.zones import check_region
from oracle.models import OfferingModel, OnDemandPriceModel, SpotPriceModel

SPOT_PRODUCT = "Linux/UNIX"
ON_DEMAND_OS = "Linux"


def load_catalog(context: FileContext, table: Table) -> Batch:
    batch = context.batch()
    batch.expect(OnDemandPriceModel, SpotPriceModel, OfferingModel)
    observed_at = context.snapshot_time(batch)
    common = {"source": "file", "source_detail": context.source_detail, "observed_at": observed_at}
    on_demand_seen: set[tuple[str, str]] = set()
    for line, record in table.records(context):
        batch.rows_read += 1
        with context.at(line):
            region = check_region(record["region"])
            zone = context.zones.resolve(record["availability_zone"], region=region)
            instance_type = check_instance_type(record["instance_type"])
            if record["price"] and (region, instance_type) not in on_demand_seen:
                on_demand_seen.add((region, instance_type))
                batch.add(
                    OnDemandPriceModel,
                    {
                        "region": region,
                        "instance_type": instance_type,
                        "operating_system": ON_DEMAND_OS,
                        "effective_date": observed_at,
                        "price_usd_per_hour": parse_price(record["price"], name="Price"),
                        **common,
                    },
                )
            if record["spot_price"]:
                batch.add(SpotPriceModel, _spot(context, zone, instance_type, record, common))
            batch.add(OfferingModel, _offering(zone, instance_type, common))
        batch.regions.add(region)
    return batch


def _spot(
    context: FileContext, zone: Any, instance_type: str, record: dict[str, str], common: Any
) -> dict[str, Any]:
    return {
        "region": zone.region,
        "zone": zone.zone,
        "availability_zone": zone.availability_zone,
        "availability_zone_id": zone.availability_zone_id,
        "instance_type": instance_type,
        "product_description": SPOT_PRODUCT,
        "timestamp": common["observed_at"],
        "price_usd_per_hour": parse_price(record["spot_price"], name="SpotPrice"),
        "ingest_run_id": context.ingest_run_id,
        **common,
    }


def _offering(zone: Any, instance_type: str, common: Any) -> dict[str, Any]:
    return {
        "region": zone.region,
        "zone": zone.zone,
        "availability_zone": zone.availability_zone,
        "availability_zone_id": zone.availability_zone_id,
        "instance_type": instance_type,
        **common,
    }
