"""Stored plans, in one place: store, get, the latest applied, mark applied, the target fleet.

"The latest applied plan" is the plan the fleet follows now: an apply, a rebalance and an
interruption's replacement each mark the plan they move the fleet to.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.types import TargetAllocation
from scheduler.models import PlanModel


def store_plan(
    engine: Engine,
    *,
    service: str,
    model: str,
    slo_tokens_per_second: float,
    allocations: Sequence[TargetAllocation],
    origin: str,
    document: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> int:
    """Store a plan's target fleet; return its id."""
    cost = sum(a.price_usd_per_hour_each * a.count for a in allocations)
    with transaction(engine) as session:
        plan = PlanModel(
            created_at=now or datetime.now(UTC),
            service=service,
            model=model,
            slo_tokens_per_second=slo_tokens_per_second,
            origin=origin,
            cost_usd_per_hour=cost,
            allocations=[a.to_dict() for a in allocations],
            document=document or {},
        )
        session.add(plan)
        session.flush()
        return plan.id


def get_plan(engine: Engine, plan_id: int) -> PlanModel | None:
    with transaction(engine) as session:
        return session.get(PlanModel, plan_id)


def latest_applied_plan(engine: Engine, service: str) -> PlanModel | None:
    """The plan ``service``'s fleet follows now (the one applied last), or None."""
    with transaction(engine) as session:
        return session.scalars(latest_applied_query(service)).first()


def latest_applied_query(service: str) -> sa.Select[PlanModel]:
    """The query behind :func:`latest_applied_plan`, for callers inside their own session."""
    return (
        sa.select(PlanModel)
        .where(PlanModel.service == service, PlanModel.applied_at.is_not(None))
        .order_by(PlanModel.applied_at.desc(), PlanModel.id.desc())
        .limit(1)
    )


def mark_applied(engine: Engine, plan_id: int, *, now: datetime) -> None:
    """Record that the fleet now follows ``plan_id``."""
    with transaction(engine) as session:
        session.get_one(PlanModel, plan_id).applied_at = now


def plan_allocations(engine: Engine, plan_id: int) -> list[TargetAllocation]:
    """The target fleet of a stored plan."""
    with transaction(engine) as session:
        plan = session.get_one(PlanModel, plan_id)
        return [TargetAllocation.from_dict(row) for row in plan.allocations]
