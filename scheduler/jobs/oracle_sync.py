"""Jobs: price sync (hourly), placement scores (a few times a day), Advisor feed (daily).

Each calls the oracle's sync for its kinds of fact; the oracle owns the AWS calls and limits.
The first run of a region backfills ``oracle.history_days``; later runs fetch what is new.
"""

from __future__ import annotations

from scheduler.jobs.context import JobContext
from scheduler.jobs.recording import JobDetails, JobFailedError, JobRun, recorded


def run_prices() -> JobRun:
    return recorded("price_sync", lambda c: _sync(c, ("spot_prices", "on_demand_prices")))


def run_placement_scores() -> JobRun:
    return recorded("placement_scores", lambda c: _sync(c, ("placement_scores",)))


def run_advisor() -> JobRun:
    return recorded("advisor", lambda c: _sync(c, ("advisor",)))


def _sync(context: JobContext, kinds: tuple[str, ...]) -> JobDetails:
    from oracle.aws.sync import sync_aws
    from scheduler.services.oracle_sync import options_from_config
    from scheduler.services.planning import json_safe
    from scheduler.services.wiring import aws_clients

    oracle = context.settings.oracle
    options = options_from_config(
        oracle,
        regions=oracle.regions,
        instance_types=oracle.instance_types,
        days=oracle.history_days,
        kinds=kinds,
    )
    clients = context.aws or aws_clients(context.settings)
    summary = sync_aws(context.engine, clients, config=options)
    details = {"kinds": list(kinds), "summary": json_safe(summary.to_dict())}
    # The sync records a failing region or feed and goes on; the run is still a failed one.
    errors = [f"{r.region}: {r.error or r.status}" for r in summary.regions if r.status != "ok"]
    if summary.advisor is not None and summary.advisor.status != "ok":
        errors.append(f"advisor: {summary.advisor.error}")
    if errors:
        raise JobFailedError("; ".join(errors)[:2000], details)
    return details
