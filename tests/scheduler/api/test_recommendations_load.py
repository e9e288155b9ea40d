"""GET /recommendations under load: a bounded cache, one computation per key, a limit on
uncached plans (503 busy with Retry-After) that leaves cached reads served, and the embedded
sample market on an empty oracle, said so in the answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from oracle.db import make_engine
from scheduler.actuator.executor import Actuator
from scheduler.api.app import app_for, create_app
from scheduler.api.context import ApiContext
from scheduler.config import ServiceConfig, Settings
from scheduler.services.recommendations import (
    Recommendation,
    RecommendationCache,
    encode_document,
    make_recommendation,
)


@pytest.fixture
def sqlite_engine(make_database: Callable[[str], str]) -> Iterator[Engine]:
    """The cache's logic is the same on both databases (the fuzz tests run it on both)."""
    engine = make_engine(make_database("sqlite"))
    yield engine
    engine.dispose()


def test_the_cache_keeps_at_most_its_size_dropping_the_least_recently_used(
    sqlite_engine: Engine,
) -> None:
    cache = RecommendationCache(
        sqlite_engine, lambda slo, model: make_recommendation({"slo": slo}), ttl_s=60, max_entries=2
    )
    one = cache.get(1.0, "m")
    cache.get(2.0, "m")
    assert cache.peek(1.0, "m")[0] is one  # 1 is now the most recently used
    cache.get(3.0, "m")
    assert len(cache) == 2
    assert cache.peek(2.0, "m") == (None, False)  # dropped
    assert cache.peek(1.0, "m")[0] is one and cache.peek(3.0, "m")[0] is not None


class _Gate:
    """A planner that blocks until released, counting its calls per SLO."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[float] = []

    def __call__(self, slo: float, model: str) -> Recommendation:
        self.calls.append(slo)
        if slo != 1.0:  # the warm-up key plans at once
            self.started.set()
            assert self.release.wait(30)
        return make_recommendation({"slo_tokens_per_second": slo, "model": model})


def test_excess_uncached_plans_get_503_busy_while_cached_reads_are_served(
    sqlite_engine: Engine,
) -> None:
    gate = _Gate()
    settings = Settings(service=ServiceConfig(name="llm-test"))

    def no_actuator() -> Actuator:
        raise AssertionError("reads never build the actuator")

    context = ApiContext(
        engine=sqlite_engine,
        settings=settings,
        actuator_factory=no_actuator,
        recommendations=RecommendationCache(
            sqlite_engine, gate, ttl_s=60, max_concurrent=1, queue_wait_s=0.3
        ),
    )
    answers: dict[str, list[httpx.Response]] = {"slow": [], "same": []}
    with TestClient(create_app(context)) as client:
        assert client.get("/recommendations?slo=1tok/s").status_code == 200  # cached now

        def ask(name: str) -> None:
            answers[name].append(client.get("/recommendations?slo=2tok/s"))

        slow = threading.Thread(target=ask, args=("slow",))
        slow.start()
        assert gate.started.wait(30)
        same = threading.Thread(target=ask, args=("same",))  # joins the computation under way
        same.start()

        busy = client.get("/recommendations?slo=3tok/s")  # no slot within 0.3 s
        assert busy.status_code == 503, busy.text
        assert busy.json()["code"] == "busy" and int(busy.headers["Retry-After"]) >= 1
        cached = client.get("/recommendations?slo=1tok/s")
        assert cached.status_code == 200 and cached.json()["slo_tokens_per_second"] == 1.0

        gate.release.set()
        slow.join(30)
        same.join(30)
    assert [r.status_code for r in answers["slow"] + answers["same"]] == [200, 200]
    assert answers["slow"][0].headers["ETag"] == answers["same"][0].headers["ETag"]
    assert gate.calls == [1.0, 2.0]  # one computation for the two requests of 2 tok/s; 3 none


def test_a_plan_past_its_time_to_live_is_served_while_the_planners_are_busy(
    sqlite_engine: Engine,
) -> None:
    gate = _Gate()
    cache = RecommendationCache(sqlite_engine, gate, ttl_s=0.5, max_concurrent=1, queue_wait_s=0.2)
    context = ApiContext(
        engine=sqlite_engine,
        settings=Settings(service=ServiceConfig(name="llm-test")),
        actuator_factory=lambda: pytest.fail("reads never build the actuator"),
        recommendations=cache,
    )
    with TestClient(create_app(context)) as client:
        first = client.get("/recommendations?slo=1tok/s")
        slow = threading.Thread(target=client.get, args=("/recommendations?slo=2tok/s",))
        slow.start()
        assert gate.started.wait(30)
        threading.Event().wait(0.6)  # the plan of 1 tok/s outlives its time to live
        assert cache.peek(1.0, "meta-llama/Llama-3.1-8B-Instruct") == (None, False)
        again = client.get("/recommendations?slo=1tok/s")  # no slot: the unchanged plan
        assert again.status_code == 200 and again.headers["ETag"] == first.headers["ETag"]
        assert client.get("/recommendations?slo=3tok/s").status_code == 503  # never planned
        gate.release.set()
        slow.join(30)
    assert gate.calls == [1.0, 2.0]


def test_a_new_service_plans_on_the_embedded_sample_and_says_so(sqlite_engine: Engine) -> None:
    """`scheduler serve` on a new machine: the same embedded default as `scheduler plan`."""
    app = app_for(sqlite_engine, Settings())
    with TestClient(app) as client:
        response = client.get("/recommendations?slo=500tok/s")
        assert response.status_code == 200, response.text
        body = response.json()
        assert "sample" in body["provenance"]
        assert any("SAMPLE" in note for note in body["notes"])
        assert body["allocations"] and body["cost_usd_per_hour"] > 0
        again = client.get("/recommendations?slo=600tok/s").json()
        assert "sample" in again["provenance"]


def test_a_dead_planning_worker_is_replaced_and_its_request_answered_busy(
    sqlite_engine: Engine,
) -> None:
    import multiprocessing
    import os
    import signal

    from scheduler.config import PlannerConfig
    from scheduler.errors import BusyError
    from scheduler.services.recommendations import ProcessRecommender
    from tests.scheduler.api.conftest import ZONES
    from tests.scheduler.market import MODEL, seed_market

    seed_market(sqlite_engine, ZONES, {("use1-az6", "g5.xlarge"): 0.3})
    settings = Settings(planner=PlannerConfig(model=MODEL, hedge="none"))
    before = set(multiprocessing.active_children())
    recommender = ProcessRecommender(sqlite_engine, settings, workers=1, max_age_s=60)
    try:
        assert json.loads(recommender(500.0, MODEL).body)["allocations"]
        (worker,) = set(multiprocessing.active_children()) - before  # the planning worker
        os.kill(worker.pid or 0, signal.SIGKILL)
        worker.join(10)
        with pytest.raises(BusyError):
            recommender(600.0, MODEL)
        assert json.loads(recommender(600.0, MODEL).body)["slo_tokens_per_second"] == 600.0
    finally:
        recommender.close()


def test_the_fingerprint_changes_with_every_table_a_plan_reads(sqlite_engine: Engine) -> None:
    from datetime import UTC, datetime

    from oracle.db import transaction
    from oracle.models import InstanceTypeModel, ServiceQuotaModel
    from scheduler.services.recommendations import fingerprint

    seen = {fingerprint(sqlite_engine)}
    now = datetime.now(UTC)
    rows = [
        InstanceTypeModel(
            instance_type="g9.xlarge",
            family="g9",
            accelerator_name="X1",
            accelerator_count=1,
            accelerator_memory_mib_each=24576,
            vcpus=4,
            memory_mib=16384,
            source="file",
            observed_at=now,
        ),
        ServiceQuotaModel(
            region="us-east-1",
            quota_code="L-3819A6DF",
            quota_name="All G and VT Spot Instance Requests",
            value_vcpus=64.0,
            source="file",
            observed_at=now,
        ),
    ]
    for row in rows:
        with transaction(sqlite_engine) as session:
            session.add(row)
        seen.add(fingerprint(sqlite_engine))
    assert len(seen) == 3


@pytest.mark.parametrize("slo_tokens_per_second", [100.0, 500.0, 1234.5])
def test_a_plan_is_encoded_once_to_the_bytes_the_stored_plans_hold(
    sqlite_engine: Engine, slo_tokens_per_second: float
) -> None:
    """One encoding per uncached plan gives the bytes that the planner's plain-JSON document
    (as POST /plans stores it) encodes to."""
    from scheduler.config import PlannerConfig
    from scheduler.services.planning import json_safe
    from scheduler.services.recommendations import SnapshotRecommender
    from tests.scheduler.api.conftest import ZONES
    from tests.scheduler.market import MODEL, seed_market

    seed_market(sqlite_engine, ZONES, {("use1-az6", "g5.xlarge"): 0.3})
    settings = Settings(planner=PlannerConfig(model=MODEL))
    recommender = SnapshotRecommender(sqlite_engine, settings, max_age_s=60, ensure=False)
    recommended, _ = recommender.recommended(slo_tokens_per_second, MODEL)
    document = recommended.document()
    plain = json.dumps(json_safe(document), sort_keys=True, allow_nan=False).encode()
    assert encode_document(document) == plain
    made = recommender(slo_tokens_per_second, MODEL)  # planned again (its timings differ)
    assert json.loads(made.body).keys() == json.loads(plain).keys() and made.fingerprint


def test_planning_workers_run_below_the_serving_process(sqlite_engine: Engine) -> None:
    """The workers that compute uncached plans run at the default priority, ``idle``: Linux's
    SCHED_IDLE (a waking serving thread preempts them at once) at the lowest niceness, while
    the serving process keeps its own."""
    import multiprocessing
    import os

    from scheduler.config import PlannerConfig
    from scheduler.services.recommendations import ProcessRecommender
    from tests.scheduler.api.conftest import ZONES
    from tests.scheduler.market import MODEL, seed_market

    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("this OS has no SCHED_IDLE")
    seed_market(sqlite_engine, ZONES, {("use1-az6", "g5.xlarge"): 0.3})
    settings = Settings(planner=PlannerConfig(model=MODEL, hedge="none"))
    assert settings.service.plan_priority == "idle"
    before = set(multiprocessing.active_children())
    recommender = ProcessRecommender(sqlite_engine, settings, workers=1, max_age_s=60)
    try:
        assert json.loads(recommender(500.0, MODEL).body)["allocations"]
        (worker,) = set(multiprocessing.active_children()) - before
        pid = worker.pid or 0
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        recommender.close()


@pytest.mark.parametrize(("priority", "policy"), [("idle", "SCHED_IDLE"), ("low", "SCHED_OTHER")])
def test_each_plan_priority_sets_its_scheduling_policy(priority: str, policy: str) -> None:
    import multiprocessing
    import os

    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("this OS has no SCHED_IDLE")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        in_force, scheduler_policy, niceness = pool.apply(_lowered, (priority,))
    assert (in_force, scheduler_policy, niceness) == (priority, getattr(os, policy), 19)


def _lowered(priority: str) -> tuple[str, int, int]:
    import os

    from scheduler.services.recommendations import lower_priority

    in_force = lower_priority(priority)
    return in_force, os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
