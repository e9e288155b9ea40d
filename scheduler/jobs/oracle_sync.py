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
    from oracle.aws.sync import sync_aws
    from scheduler.services.oracle_sync import options_from_config
    from scheduler.services.wiring import aws_clients

    oracle = context.settings.oracle
    options = options_from_config(
        oracle,
        regions=oracle.regions,
        instance_types=oracle.instance_types,
        days=oracle.history_days,
        kinds=kinds,
    )
    summary = sync_aws(context.engine, aws_clients(context.settings), config=options)
    return {"kinds": list(kinds), "summary": str(summary)[:2000]}
