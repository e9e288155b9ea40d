"""When the rebalancer runs next: from the job store of a running worker, else estimated from
its last run and the configured interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.config import Settings
from scheduler.models import ApschedulerJobModel, JobRunModel

REBALANCE_JOB = "rebalance"


def next_rebalance(engine: Engine, settings: Settings) -> dict[str, Any]:
    """``{"at": datetime | None, "basis": str, "last": {...} | None}``."""
    with transaction(engine) as session:
        scheduled = session.scalar(
            sa.select(ApschedulerJobModel.next_run_time).where(
                ApschedulerJobModel.id == REBALANCE_JOB
            )
        )
        last = session.scalars(
            sa.select(JobRunModel)
            .where(JobRunModel.job == REBALANCE_JOB)
            .order_by(JobRunModel.started_at.desc(), JobRunModel.id.desc())
            .limit(1)
        ).first()
        last_run: dict[str, Any] | None = (
            None
            if last is None
            else {"started_at": last.started_at, "status": last.status, "error": last.error}
        )
    if not settings.jobs.enabled:
        return {"at": None, "basis": "jobs.enabled is false: no rebalancing", "last": last_run}
    if scheduled is not None:
        at = datetime.fromtimestamp(scheduled, UTC)
        return {"at": at, "basis": "scheduled by the running worker", "last": last_run}
    if last_run is not None:
        interval_s = settings.jobs.rebalance_interval_s
        return {
            "at": last_run["started_at"] + timedelta(seconds=interval_s),
            "basis": f"last run + jobs.rebalance_interval_s = {interval_s:g} s",
            "last": last_run,
        }
    return {
        "at": None,
        "basis": "no worker has run the rebalancer yet: start `scheduler worker` "
        "(or `scheduler serve --jobs`)",
        "last": None,
    }
