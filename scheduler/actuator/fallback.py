"""The replan used when no planner is wired in: move what failed from spot to on-demand."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.goodput import best_goodput
from oracle.stats import on_demand_offers
from scheduler.actuator.types import FleetReplica, Pool, TargetAllocation
from scheduler.models import PlanModel
from scheduler.planning.fallback import cover_on_demand, cover_type


@dataclass(frozen=True)
class ReplanRequest:
    """Ask for a new target: leave out ``exclude_pools``; ``running`` is the live fleet."""

    plan_id: int
    exclude_pools: frozenset[Pool]
    running: tuple[FleetReplica, ...]
    reason: str


def on_demand_fallback(engine: Engine, request: ReplanRequest, *, now: datetime) -> int | None:
    """The same plan, with what an excluded spot pool no longer runs moved to on-demand (region
    level, the AZ kept as the subnet hint; :func:`~scheduler.planning.fallback.cover_on_demand`)
    in the type that covers it cheapest (:func:`~scheduler.planning.fallback.cover_type`, on the
    oracle's on-demand prices at ``now`` and the plan's model's goodput; the failed type itself
    where they are unknown); None when an excluded pool is already on-demand."""
    running = Counter(replica.pool for replica in request.running)
    with transaction(engine) as session:
        plan = session.get_one(PlanModel, request.plan_id)
        rows = {TargetAllocation.from_dict(row).pool: row for row in _merge(plan.allocations)}
        counts = {pool: int(str(row["count"])) for pool, row in rows.items()}
        regions = {pool.region for pool in request.exclude_pools}
        prices = {
            (offer.region, offer.instance_type): offer.price_usd_per_hour
            for offer in on_demand_offers(session, as_of=now, regions=regions)
        }
        goodput = {
            name: fact.goodput_tokens_per_second
            for name, fact in best_goodput(session, model=plan.model).items()
        }

        def stand_in(pool: Pool) -> Pool:
            kind = cover_type(
                pool.instance_type, pool.region, goodput=goodput, on_demand_usd_per_hour=prices
            )
            return replace(pool, zone="", market="on-demand", instance_type=kind)

        covered = cover_on_demand(counts, running, request.exclude_pools, stand_in)
        if covered is None:
            return None
        for pool in request.exclude_pools:
            if pool in rows and pool.market == "spot":
                cover = stand_in(pool)
                kind = cover.instance_type
                row = {**rows[pool], "market": "on-demand", "zone": "", "instance_type": kind}
                if (cover.region, kind) in prices:
                    row["price_usd_per_hour_each"] = prices[(cover.region, kind)]
                if kind in goodput:
                    row["tokens_per_second_each"] = goodput[kind]
                rows.setdefault(cover, row)
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
