"""Every job run is recorded in ``job_runs`` (status, duration, what it did, or the error)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from oracle.db import transaction
from scheduler.jobs.context import JobContext, current
from scheduler.models import JobRunModel

log = logging.getLogger("scheduler.jobs")

#: What a job's body did, as the JSON stored in ``job_runs.details``.
JobDetails = dict[str, Any]


@dataclass(frozen=True)
class JobRun:
    """One recorded run of a job (a ``job_runs`` row): ``status`` ``ok`` or ``error`` (with the
    ``error``), how long it took, and the ``details`` its body returned (or, on a
    :class:`JobFailedError`, the details it raised with; empty on another error)."""

    job: str
    status: str
    duration_s: float
    details: JobDetails
    error: str | None = None


def recorded(name: str, body: Callable[[JobContext], JobDetails]) -> JobRun:
    """Run ``body`` with the current context and record the run; errors are recorded, logged
    and not raised (the scheduler keeps running)."""
    context = current()
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    status: str = "ok"
    error: str | None = None
    details: JobDetails = {}
    try:
        details = body(context)
    except JobFailedError as exc:
        status, error, details = "error", str(exc), exc.details
        log.error("job %s failed: %s", name, exc)
    except Exception as exc:
        status, error = "error", f"{type(exc).__name__}: {exc}"
        log.exception("job %s failed", name)
    run = JobRun(name, status, time.perf_counter() - started, details, error)
    with transaction(context.engine) as session:
        session.add(
            JobRunModel(
                job=name,
                worker=context.worker,
                started_at=started_at,
                duration_s=run.duration_s,
                status=run.status,
                details=run.details,
                error=run.error,
            )
        )
    return run


class JobFailedError(Exception):
    """A job that ran but did not do its work; its details are recorded with the error."""

    def __init__(self, message: str, details: JobDetails) -> None:
        super().__init__(message)
        self.details = details


def last_details(context: JobContext, job: str) -> JobDetails:
    """What the previous successful run of ``job`` left in its details (state between runs)."""
    with transaction(context.engine) as session:
        row = session.scalars(
            sa.select(JobRunModel)
            .where(JobRunModel.job == job, JobRunModel.status == "ok")
            .order_by(JobRunModel.id.desc())
            .limit(1)
        ).first()
        return dict(row.details) if row else {}
