"""Plans from the planner, stored; the replanner the actuator calls after capacity errors."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from scheduler.actuator.executor import Replanner
from scheduler.actuator.fallback import ReplanRequest
from scheduler.actuator.types import FleetReplica, Pool, TargetAllocation
from scheduler.config import Settings
from scheduler.plan_store import get_plan, store_plan
from scheduler.planner import InfeasiblePlanError, Plan, PoolKey, RunningInstance, make_plan


def plan_and_store(
    engine: Engine,
    settings: Settings,
    *,
    slo_tokens_per_second: float,
    origin: str,
    model: str | None = None,
    running: Sequence[FleetReplica] = (),
    exclude_pools: Collection[Pool] = (),
    markets: str | None = None,
    as_of: datetime | None = None,
) -> tuple[int, Plan]:
    """Ask the planner, store the plan; return its id and the plan.

    Raises :class:`scheduler.planner.InfeasiblePlanError` when no plan meets the SLO.
    """
    config = settings.planner
    if markets is not None:
        config = config.model_copy(update={"markets": markets})
    model = model or settings.service.spec.model or config.model
    plan = make_plan(
        engine,
        config=config,
        slo_tokens_per_second=slo_tokens_per_second,
        model=model,
        as_of=as_of,
        running=running_instances(running),
        exclude_pools=[
            PoolKey(*(p.region, p.zone, p.instance_type, p.market)) for p in exclude_pools
        ],
    )
    allocations = [
        TargetAllocation(
            pool=Pool(*a.pool),
            count=a.count,
            availability_zone=a.availability_zone,
            availability_zone_id=a.availability_zone_id,
            price_usd_per_hour_each=a.price_usd_per_hour_each,
            tokens_per_second_each=a.tokens_per_second_each,
        )
        for a in plan.allocations
        if a.count > 0
    ]
    plan_id = store_plan(
        engine,
        service=settings.service.name,
        model=model,
        slo_tokens_per_second=slo_tokens_per_second,
        allocations=allocations,
        origin=origin,
        document=json_safe(plan.to_dict()),
    )
    return plan_id, plan


def planner_replanner(engine: Engine, settings: Settings) -> Replanner:
    """Replan without the failed pools; when spot runs dry, allow (then force) on-demand."""

    def replan(request: ReplanRequest) -> int | None:
        stored = get_plan(engine, request.plan_id)
        if stored is None:
            return None
        tries: list[str | None] = [None]
        if settings.service.on_demand_fallback:
            tries += ["any", "on-demand"]
        for markets in tries:
            try:
                plan_id, _ = plan_and_store(
                    engine,
                    settings,
                    slo_tokens_per_second=stored.slo_tokens_per_second,
                    model=stored.model,
                    origin="fallback" if markets else "replan",
                    running=request.running,
                    exclude_pools=request.exclude_pools,
                    markets=markets,
                )
                return plan_id
            except InfeasiblePlanError:
                continue
        return None

    return replan


def running_instances(fleet: Sequence[FleetReplica]) -> list[RunningInstance]:
    counts = Counter(replica.pool for replica in fleet)
    return [
        RunningInstance(PoolKey(p.region, p.zone, p.instance_type, p.market), n)
        for p, n in sorted(counts.items())
    ]


def json_safe(document: dict[str, Any]) -> dict[str, Any]:
    """The planner's dict with datetimes as ISO 8601 strings (JSON columns need plain types)."""
    return dict(json.loads(json.dumps(document, default=_default)))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
