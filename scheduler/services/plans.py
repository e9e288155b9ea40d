"""Make a plan to store: from given allocations as they are, else the planner's answer.

The store itself (get, latest applied, mark applied) is :mod:`scheduler.plan_store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from scheduler.actuator.types import TargetAllocation
from scheduler.config import Settings
from scheduler.plan_store import store_plan


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
    # Deferred: the planner (scipy, pandas) loads only when a plan is solved.
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
