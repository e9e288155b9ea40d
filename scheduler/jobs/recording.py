"""Every job run is recorded in ``job_runs`` (status, duration, what it did, or the error)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from oracle.db import transaction
from scheduler.jobs.context import JobContext, current
from scheduler.models import JobRunModel

log = logging.getLogger("scheduler.jobs")


def recorded(name: str, body: Callable[[JobContext], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` with the current context and record the run; errors are recorded, logged
    and not raised (the scheduler keeps running)."""
    context = current()
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    status, error, details = "ok", None, {}
    try:
        details = body(context)
    except JobFailedError as exc:
        status, error, details = "error", str(exc), exc.details
        log.error("job %s failed: %s", name, exc)
    except Exception as exc:
        status, error = "error", f"{type(exc).__name__}: {exc}"
        log.exception("job %s failed", name)
    with transaction(context.engine) as session:
        session.add(
            JobRunModel(
                job=name,
                worker=context.worker,
                started_at=started_at,
                duration_s=time.perf_counter() - started,
                status=status,
                details=details,
                error=error,
            )
        )
    return details


class JobFailedError(Exception):
    """A job that ran but did not do its work; its details are recorded with the error."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


def last_details(context: JobContext, job: str) -> dict[str, Any]:
    """What the previous successful run of ``job`` left in its details (state between runs)."""
    with transaction(context.engine) as session:
        row = session.scalars(
            sa.select(JobRunModel)
            .where(JobRunModel.job == job, JobRunModel.status == "ok")
            .order_by(JobRunModel.id.desc())
            .limit(1)
        ).first()
        return dict(row.details) if row else {}
