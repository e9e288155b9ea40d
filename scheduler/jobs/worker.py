"""The worker: waits for the lock, then runs the jobs on APScheduler with a database job store.

Jobs are stored by reference (``module:function``, no arguments), so the persistent store
holds nothing but their schedule; their context is set in this process. Every job has
``max_instances=1``, ``coalesce=True`` and jitter, and the ``[jobs] enabled`` switch turns
background work off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from oracle.locks import WorkerLock
from scheduler.config import Settings
from scheduler.jobs.context import JobContext, set_current

log = logging.getLogger("scheduler.worker")


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: str
    interval_s: float


def job_specs(settings: Settings) -> list[JobSpec]:
    jobs = settings.jobs
    specs = [
        JobSpec("price_sync", "scheduler.jobs.oracle_sync:run_prices", jobs.price_sync_interval_s),
        JobSpec(
            "placement_scores",
            "scheduler.jobs.oracle_sync:run_placement_scores",
            jobs.placement_scores_interval_s,
        ),
        JobSpec("advisor", "scheduler.jobs.oracle_sync:run_advisor", jobs.advisor_interval_s),
        JobSpec("reconcile", "scheduler.jobs.reconcile:run", jobs.reconcile_interval_s),
        JobSpec("rebalance", "scheduler.jobs.rebalance:run", jobs.rebalance_interval_s),
    ]
    if settings.service.sqs_queue_url:
        specs.append(JobSpec("events", "scheduler.jobs.events_poll:run", jobs.sqs_poll_interval_s))
    return specs


def build_scheduler(context: JobContext, specs: list[JobSpec]) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=context.engine)},
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )
    jitter = int(context.settings.jobs.jitter_s) or None
    for spec in specs:
        scheduler.add_job(
            spec.func,
            "interval",
            seconds=spec.interval_s,
            jitter=jitter,
            id=spec.id,
            name=spec.id,
            replace_existing=True,
        )
    return scheduler


def run_worker(
    context: JobContext,
    *,
    stop: threading.Event,
    specs: list[JobSpec] | None = None,
    lock_poll_s: float = 5.0,
    on_state: Callable[[str], None] = lambda _state: None,
) -> None:
    """Run until ``stop`` is set: standby until the lock is ours, then run the jobs.

    When the lock's database connection is lost, the worker steps down (stops its jobs,
    ``lost-lock``) and stands by again, polling until it can take the lock anew; a database
    that cannot be reached meanwhile is logged, not fatal.
    """
    settings = context.settings
    if not settings.jobs.enabled:
        on_state("disabled")
        return
    lock = WorkerLock(context.engine, key=settings.jobs.lock_key)
    try:
        while not stop.is_set():
            on_state("standby")
            if not _wait_for_lock(lock, stop, lock_poll_s):
                break
            on_state("active")
            if not _run_jobs(context, lock, stop, specs, lock_poll_s):
                break
            log.error("lost the worker lock (database connection gone): stepping down")
            on_state("lost-lock")
    finally:
        lock.release()
        on_state("stopped")


def _wait_for_lock(lock: WorkerLock, stop: threading.Event, poll_s: float) -> bool:
    """True once the lock is ours; False when told to stop first."""
    unreachable = False
    while True:
        try:
            if lock.try_acquire():
                return True
            unreachable = False
        except (sa.exc.SQLAlchemyError, OSError) as error:
            if not unreachable:  # once per outage, not once per poll
                log.warning("standby: the database cannot be reached: %s", _first_line(error))
            unreachable = True
        if stop.wait(poll_s):
            return False


def _run_jobs(
    context: JobContext,
    lock: WorkerLock,
    stop: threading.Event,
    specs: list[JobSpec] | None,
    poll_s: float,
) -> bool:
    """Run the jobs while the lock is held; True when the lock was lost, False on stop."""
    set_current(context)
    if specs is None:
        specs = job_specs(context.settings)
    scheduler = build_scheduler(context, specs)
    try:
        from scheduler.jobs import reconcile

        try:
            reconcile.run()  # on start: adopt or clean up what a crash left behind
            scheduler.start()
        except (sa.exc.SQLAlchemyError, OSError) as error:
            log.error("could not start the jobs: %s", _first_line(error))
        while not stop.wait(poll_s):
            if not lock.still_held():
                return True
        return False
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=True)
        lock.release()


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
