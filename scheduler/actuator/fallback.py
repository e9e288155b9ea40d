"""The replan used when no planner is wired in: move what failed from spot to on-demand."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.types import FleetReplica, Pool, TargetAllocation
from scheduler.models import PlanModel
from scheduler.planning.fallback import cover_on_demand


@dataclass(frozen=True)
class ReplanRequest:
    """Ask for a new target: leave out ``exclude_pools``; ``running`` is the live fleet."""

    plan_id: int
    exclude_pools: frozenset[Pool]
    running: tuple[FleetReplica, ...]
    reason: str


def on_demand_fallback(engine: Engine, request: ReplanRequest, *, now: datetime) -> int | None:
    """The same plan, with what an excluded spot pool no longer runs moved to on-demand (region
    level, the AZ kept as the subnet hint; :func:`~scheduler.planning.fallback.cover_on_demand`);
    None when an excluded pool is already on-demand."""
    running = Counter(replica.pool for replica in request.running)
    with transaction(engine) as session:
        plan = session.get_one(PlanModel, request.plan_id)
        rows = {TargetAllocation.from_dict(row).pool: row for row in _merge(plan.allocations)}
        counts = {pool: int(str(row["count"])) for pool, row in rows.items()}
        covered = cover_on_demand(counts, running, request.exclude_pools, _on_demand)
        if covered is None:
            return None
        for pool in request.exclude_pools:
            if pool in rows and pool.market == "spot":
                rows.setdefault(_on_demand(pool), {**rows[pool], "market": "on-demand", "zone": ""})
        new = PlanModel(
            created_at=now,
            service=plan.service,
            model=plan.model,
            slo_tokens_per_second=plan.slo_tokens_per_second,
            origin="fallback",
            cost_usd_per_hour=plan.cost_usd_per_hour,
            allocations=[{**rows[pool], "count": count} for pool, count in covered.items()],
            document={"fallback_of": plan.id, "reason": request.reason},
        )
        session.add(new)
        session.flush()
        return new.id


def _on_demand(pool: Pool) -> Pool:
    """The on-demand pool that stands in for ``pool`` (itself when it is on-demand)."""
    return replace(pool, zone="", market="on-demand")


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
