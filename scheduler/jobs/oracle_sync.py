"""Jobs: price sync (hourly), placement scores (a few times a day), Advisor feed (daily).

Each calls the oracle's sync for its kinds of fact; the oracle owns the AWS calls and limits.
The first run of a region backfills ``oracle.history_days``; later runs fetch what is new.
"""

from __future__ import annotations

from typing import Any

from scheduler.jobs.context import JobContext
from scheduler.jobs.recording import recorded


def run_prices() -> dict[str, Any]:
    return recorded("price_sync", lambda c: _sync(c, ("spot_prices", "on_demand_prices")))


def run_placement_scores() -> dict[str, Any]:
    return recorded("placement_scores", lambda c: _sync(c, ("placement_scores",)))


def run_advisor() -> dict[str, Any]:
    return recorded("advisor", lambda c: _sync(c, ("advisor",)))


def _sync(context: JobContext, kinds: tuple[str, ...]) -> dict[str, Any]:
    from oracle.aws.sync import OracleSyncOptions, sync_aws
    from scheduler.services.wiring import aws_clients

    oracle = context.settings.oracle
    options = OracleSyncOptions(
        regions=tuple(oracle.regions),
        instance_types=tuple(oracle.instance_types),
        days=oracle.history_days,
        product_description=oracle.product_description,
        operating_system=oracle.operating_system,
        placement_target_capacities=tuple(oracle.placement_target_capacities),
        placement_types_per_query=oracle.placement_types_per_query,
        max_parallel_regions=oracle.max_parallel_regions,
        advisor_url=oracle.advisor_url,
        advisor_file=oracle.advisor_file,
        pricing_region=oracle.pricing_region,
        kinds=kinds,
    )
    summary = sync_aws(context.engine, aws_clients(context.settings), config=options)
    return {"kinds": list(kinds), "summary": str(summary)[:2000]}
