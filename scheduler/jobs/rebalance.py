"""Job: rebalance (every 15 minutes by default); the SLO is fixed or follows the load."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from scheduler.jobs.context import JobContext
from scheduler.jobs.load import follow_load, scrape_generated_tokens
from scheduler.jobs.recording import JobDetails, JobRun, last_details, recorded
from scheduler.models import ReplicaState
from scheduler.plan_store import latest_applied_plan
from scheduler.services.fleet import list_replicas
from scheduler.services.rebalance import rebalance
from scheduler.slo import parse_slo

NAME = "rebalance"


def run() -> JobRun:
    return recorded(NAME, _body)


def _body(context: JobContext) -> JobDetails:
    settings = context.settings
    slo = parse_slo(settings.service.slo) if settings.service.slo else None
    load_state: dict[str, Any] = {}
    if settings.jobs.slo_mode == "load":
        applied = latest_applied_plan(context.engine, settings.service.name)
        current = slo or (applied.slo_tokens_per_second if applied else 0.0)
        endpoints = [
            r.endpoint
            for r in list_replicas(context.engine, service=settings.service.name)
            if r.state == ReplicaState.READY and r.endpoint
        ]
        decision = follow_load(
            settings.jobs,
            current_slo=current,
            tokens_total=scrape_generated_tokens(endpoints),
            now_s=time.time(),
            state=last_details(context, NAME).get("load", {}),
        )
        load_state = decision.state
        slo = decision.slo_tokens_per_second if decision.changed else (current or None)
    report = rebalance(context.actuator_factory(), now=datetime.now(UTC), slo_tokens_per_second=slo)
    return {**report.to_dict(), "load": load_state}
