"""A worker whose PostgreSQL connection drops steps down, stays alive as a standby, and takes
the lock again when the database is back (through a real TCP proxy that the test cuts)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from oracle.db import make_engine, transaction
from oracle.locks import WorkerLock
from scheduler.actuator.ec2 import Ec2Adapter
from scheduler.actuator.executor import Actuator
from scheduler.config import JobsConfig, ServiceConfig, Settings
from scheduler.jobs.context import JobContext
from scheduler.jobs.worker import JobSpec, run_worker
from scheduler.models import JobRunModel
from tests.scheduler.jobs.tcp_proxy import CuttableProxy


def _no_aws(_region: str) -> Any:
    raise AssertionError("reconcile of an empty fleet must not call AWS")


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _runs(url: str) -> int:
    engine = make_engine(url)
    try:
        with transaction(engine) as session:
            return session.scalar(sa.select(sa.func.count()).select_from(JobRunModel)) or 0
    finally:
        engine.dispose()


def test_a_worker_steps_down_when_its_connection_drops_and_rejoins(
    make_database: Callable[[str], str],
) -> None:
    direct_url = make_database("postgresql")
    url = sa.engine.make_url(direct_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    settings = Settings(
        service=ServiceConfig(name="llm-test"),
        jobs=JobsConfig(jitter_s=0.0, lock_key=random.randrange(1, 2**31)),
    )
    engine = make_engine(proxied_url)

    def actuator() -> Actuator:
        return Actuator(
            engine, settings, Ec2Adapter(_no_aws, settings.service, model="m"), probe=bool
        )

    context = JobContext(engine=engine, settings=settings, actuator_factory=actuator, worker="w")
    states: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            run_worker(
                context,
                stop=stop,
                specs=[JobSpec("reconcile", "scheduler.jobs.reconcile:run", 0.2)],
                lock_poll_s=0.05,
                on_state=states.append,
            )
        except BaseException as error:  # the property: the worker never dies of it
            failures.append(error)

    rival = WorkerLock(make_engine(direct_url), key=settings.jobs.lock_key)
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        _wait_for(lambda: "active" in states)
        _wait_for(lambda: _runs(direct_url) >= 2)
        assert not rival.try_acquire()

        proxy.cut()
        _wait_for(lambda: "lost-lock" in states)
        assert worker.is_alive() and not failures
        assert states[-1] == "standby"  # stepped down, standing by
        # The server freed the lock with the connection: another worker may take it now.
        _wait_for(rival.try_acquire)
        rival.release()

        proxy.restore()
        _wait_for(lambda: states.count("active") == 2)
        assert not rival.try_acquire()  # rejoined: the lock is the worker's again
        seen = _runs(direct_url)
        _wait_for(lambda: _runs(direct_url) >= seen + 2)  # and its jobs run again
    finally:
        stop.set()
        worker.join(30)
        proxy.close()
        engine.dispose()
    assert not worker.is_alive() and not failures
    assert states == ["standby", "active", "lost-lock", "standby", "active", "stopped"]
