"""Two workers on one database: exactly one holds the lock and runs jobs; the other takes over."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import make_engine, transaction
from oracle.locks import WorkerLock
from scheduler.actuator.ec2 import Ec2Adapter
from scheduler.actuator.executor import Actuator
from scheduler.config import JobsConfig, ServiceConfig, Settings
from scheduler.jobs.context import JobContext
from scheduler.jobs.worker import JobSpec, job_specs, run_worker
from scheduler.models import JobRunModel


def _no_aws(_region: str) -> Any:
    raise AssertionError("reconcile of an empty fleet must not call AWS")


def _settings() -> Settings:
    jobs = JobsConfig(jitter_s=0.0, lock_key=random.randrange(1, 2**31))
    return Settings(service=ServiceConfig(name="llm-test"), jobs=jobs)


def _context(url: str, settings: Settings, name: str) -> JobContext:
    engine = make_engine(url)

    def actuator() -> Actuator:
        ec2 = Ec2Adapter(_no_aws, settings.service, model="m")
        return Actuator(engine, settings, ec2, probe=lambda _url: False)

    return JobContext(engine=engine, settings=settings, actuator_factory=actuator, worker=name)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _runs(engine: Engine) -> list[str]:
    with transaction(engine) as session:
        return list(session.scalars(sa.select(JobRunModel.worker).order_by(JobRunModel.id)))


def test_exactly_one_of_two_workers_acts(database_url: str, engine: Engine) -> None:
    settings = _settings()
    specs = [JobSpec("reconcile", "scheduler.jobs.reconcile:run", 0.2)]
    states: dict[str, list[str]] = {"a": [], "b": []}
    stops = {"a": threading.Event(), "b": threading.Event()}
    threads = {}
    for name in ("a", "b"):
        context = _context(database_url, settings, name)
        threads[name] = threading.Thread(
            target=run_worker,
            args=(context,),
            kwargs={
                "stop": stops[name],
                "specs": specs,
                "lock_poll_s": 0.05,
                "on_state": states[name].append,
            },
            daemon=True,
        )
        threads[name].start()
        if name == "a":
            _wait_for(lambda: "active" in states["a"])
    _wait_for(lambda: len(_runs(engine)) >= 4)
    assert states["b"] == ["standby"]
    assert set(_runs(engine)) == {"a"}

    stops["a"].set()
    threads["a"].join(30)
    _wait_for(lambda: "active" in states["b"])
    seen = len(_runs(engine))
    _wait_for(lambda: len(_runs(engine)) >= seen + 3)
    stops["b"].set()
    threads["b"].join(30)
    runs = _runs(engine)
    # Never both: every run of b comes after the last run of a.
    assert runs == sorted(runs) and set(runs) == {"a", "b"}
    assert states["a"][-1] == states["b"][-1] == "stopped"


def test_the_lock_is_exclusive_and_released(database_url: str) -> None:
    key = random.randrange(1, 2**31)
    first = WorkerLock(make_engine(database_url), key=key)
    second = WorkerLock(make_engine(database_url), key=key)
    assert first.try_acquire() and first.still_held()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_the_sqs_poll_interval_comes_from_the_jobs_section() -> None:
    service = ServiceConfig(sqs_queue_url="https://sqs.us-east-1.amazonaws.com/1/events")
    settings = Settings(service=service, jobs=JobsConfig(sqs_poll_interval_s=7.5))
    by_id = {spec.id: spec for spec in job_specs(settings)}
    assert by_id["events"].interval_s == 7.5
    assert "events" not in {spec.id for spec in job_specs(Settings())}
