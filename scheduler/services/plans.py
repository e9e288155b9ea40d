"""Stored plans: make one with the planner (or from given allocations), read it back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.types import TargetAllocation
from scheduler.config import Settings
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
    with transaction(engine) as session:
        return session.scalars(
            sa.select(PlanModel)
            .where(PlanModel.service == service, PlanModel.applied_at.is_not(None))
            .order_by(PlanModel.applied_at.desc(), PlanModel.id.desc())
            .limit(1)
        ).first()


def create_plan(
    engine: Engine,
    settings: Settings,
    *,
    slo_tokens_per_second: float,
    origin: str,
    model: str | None = None,
    markets: str | None = None,
    allocations: Sequence[dict[str, Any]] | None = None,
) -> int:
    """Store a plan: the given allocations as they are, else the planner's answer."""
    model = model or settings.service.spec.model or settings.planner.model
    if allocations is not None:
        return store_plan(
            engine,
            service=settings.service.name,
            model=model,
            slo_tokens_per_second=slo_tokens_per_second,
            allocations=[TargetAllocation.from_dict(dict(row)) for row in allocations],
            origin=origin,
            document={"hand_made": True},
        )
    from scheduler.services.planning import plan_and_store

    plan_id, _ = plan_and_store(
        engine,
        settings,
        slo_tokens_per_second=slo_tokens_per_second,
        origin=origin,
        model=model,
        markets=markets,
    )
    return plan_id
