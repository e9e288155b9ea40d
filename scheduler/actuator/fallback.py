"""The replan used when no planner is wired in: move what failed from spot to on-demand."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.types import FleetReplica, Pool, TargetAllocation
from scheduler.models import PlanModel


@dataclass(frozen=True)
class ReplanRequest:
    """Ask for a new target: leave out ``exclude_pools``; ``running`` is the live fleet."""

    plan_id: int
    exclude_pools: frozenset[Pool]
    running: tuple[FleetReplica, ...]
    reason: str


def on_demand_fallback(engine: Engine, request: ReplanRequest, *, now: datetime) -> int | None:
    """The same plan, with what an excluded spot pool no longer runs moved to on-demand (region
    level, the AZ kept as the subnet hint); None when an excluded pool is already on-demand."""
    running = Counter(replica.pool for replica in request.running)
    with transaction(engine) as session:
        plan = session.get_one(PlanModel, request.plan_id)
        rows: list[dict[str, object]] = []
        for row in plan.allocations:
            allocation = TargetAllocation.from_dict(row)
            if allocation.pool not in request.exclude_pools:
                rows.append(row)
                continue
            if allocation.pool.market != "spot":
                return None
            kept = min(running[allocation.pool], allocation.count)
            if kept:
                rows.append({**row, "count": kept})
            if allocation.count > kept:
                rows.append(
                    {**row, "market": "on-demand", "zone": "", "count": allocation.count - kept}
                )
        new = PlanModel(
            created_at=now,
            service=plan.service,
            model=plan.model,
            slo_tokens_per_second=plan.slo_tokens_per_second,
            origin="fallback",
            cost_usd_per_hour=plan.cost_usd_per_hour,
            allocations=_merge(rows),
            document={"fallback_of": plan.id, "reason": request.reason},
        )
        session.add(new)
        session.flush()
        return new.id


def _merge(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """One row per pool (counts added), so a plan never names a pool twice."""
    merged: dict[tuple[object, ...], dict[str, object]] = {}
    for row in rows:
        key = (row["region"], row["zone"], row["instance_type"], row["market"])
        if key in merged:
            merged[key]["count"] = int(str(merged[key]["count"])) + int(str(row["count"]))
        else:
            merged[key] = dict(row)
    return list(merged.values())
