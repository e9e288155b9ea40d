"""On-demand price history CSV: ``timestamp, instance, price_usd``.

The format of amorton45/aws-gpu-price-tracker.

Each row is one poll of the Pricing API; it becomes an on_demand_prices row effective at its
timestamp. Rows with an empty price are back-filled gaps in the source and are skipped, not
errors. The tracker polls US East (N. Virginia) Linux prices and writes no region column, so a
file without one is taken as us-east-1 unless ``--region`` says otherwise (the output notes it).
"""

from __future__ import annotations

from oracle.importers.base import (
    Batch,
    FileContext,
    Table,
    check_instance_type,
    check_text,
    parse_price,
    parse_timestamp,
)
from oracle.importers.zones import check_region
from oracle.models import OnDemandPriceModel

#: The region of a file without a region column (the tracker's: US East, N. Virginia).
DEFAULT_REGION = "us-east-1"
TYPE_COLUMNS = ("instance_type", "instance")
PRICE_COLUMNS = ("price_usd_per_hour", "price_usd", "price")


def load_history(context: FileContext, table: Table) -> Batch:
    type_column = next(name for name in TYPE_COLUMNS if name in table.columns)
    price_column = next(name for name in PRICE_COLUMNS if name in table.columns)
    has_region = "region" in table.columns
    default_region = context.region or DEFAULT_REGION
    batch = context.batch()
    batch.expect(OnDemandPriceModel)
    skipped = 0
    for line, record in table.records(context):
        batch.rows_read += 1
        with context.at(line):
            timestamp = parse_timestamp(record["timestamp"])
            instance_type = check_instance_type(record[type_column])
            region = check_region(
                record["region"] if has_region and record["region"] else default_region
            )
            if not record[price_column]:
                skipped += 1
                continue
            batch.add(
                OnDemandPriceModel,
                {
                    "region": region,
                    "instance_type": instance_type,
                    "operating_system": check_text(
                        record.get("operating_system") or "Linux",
                        name="operating_system",
                        max_chars=32,
                    ),
                    "effective_date": timestamp,
                    "price_usd_per_hour": parse_price(record[price_column], name="price"),
                    "source": "file",
                    "source_detail": context.source_detail,
                    "observed_at": timestamp,
                },
            )
        batch.regions.add(region)
    if skipped:
        batch.notes.append(f"{skipped} rows with an empty price skipped")
    if not has_region:
        how = "from --region" if context.region else "pass --region to change it"
        batch.notes.append(f"no region column: prices taken as {default_region} ({how})")
    return batch
