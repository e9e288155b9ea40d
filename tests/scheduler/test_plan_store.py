"""The plan store: store, get, mark applied, and which plan the fleet follows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from scheduler.actuator.types import Pool, TargetAllocation
from scheduler.plan_store import (
    get_plan,
    latest_applied_plan,
    mark_applied,
    plan_allocations,
    store_plan,
)

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
ALLOCATIONS = [
    TargetAllocation(Pool("us-east-1", "use1-az1", "g5.xlarge", "spot"), 2, "us-east-1a"),
    TargetAllocation(
        Pool("us-east-1", "", "g6.xlarge", "on-demand"), 1, price_usd_per_hour_each=0.8
    ),
]


def _store(engine: Engine, service: str = "llm") -> int:
    return store_plan(
        engine,
        service=service,
        model="m",
        slo_tokens_per_second=500.0,
        allocations=ALLOCATIONS,
        origin="test",
        now=T0,
    )


def test_a_stored_plan_reads_back(engine: Engine) -> None:
    plan_id = _store(engine)
    plan = get_plan(engine, plan_id)
    assert plan is not None and plan.applied_at is None
    assert plan.cost_usd_per_hour == 0.8
    assert plan_allocations(engine, plan_id) == ALLOCATIONS
    assert get_plan(engine, plan_id + 1000) is None


def test_the_latest_applied_plan_is_the_one_marked_last(engine: Engine) -> None:
    first, second, other = _store(engine), _store(engine), _store(engine, service="other")
    assert latest_applied_plan(engine, "llm") is None
    mark_applied(engine, second, now=T0)
    mark_applied(engine, first, now=T0 + timedelta(minutes=1))
    mark_applied(engine, other, now=T0 + timedelta(minutes=2))
    latest = latest_applied_plan(engine, "llm")
    assert latest is not None and latest.id == first
    # The same instant: the newer plan wins.
    mark_applied(engine, second, now=T0 + timedelta(minutes=1))
    latest = latest_applied_plan(engine, "llm")
    assert latest is not None and latest.id == second
