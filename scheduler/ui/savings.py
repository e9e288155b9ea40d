"""What the fleet cost against the all-on-demand baseline, from the applied plans and the
billed instances.

Both curves are step functions of time. The fleet's cost rate at time t is the sum of the
hourly prices of the replicas billed at t (launched, not yet terminated). The baseline's rate is
the cost of the cheapest all-on-demand plan for the same SLO on the same data (the
``all_on_demand`` baseline stored with the plan in force at t). Cumulative costs are their exact
integrals over the steps, in USD.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.models import PlanModel, ReplicaModel
from scheduler.ui.lineage import planner_document


def savings(engine: Engine, *, service: str, now: datetime | None = None) -> dict[str, Any]:
    """The two cost curves of ``service`` up to ``now``, their totals and the plans behind
    them. ``points`` holds one entry per change of either rate."""
    now = now or datetime.now(UTC)
    with transaction(engine) as session:
        plans = session.execute(
            sa.select(
                PlanModel.id,
                PlanModel.applied_at,
                PlanModel.origin,
                PlanModel.cost_usd_per_hour,
                PlanModel.document,
            )
            .where(PlanModel.service == service, PlanModel.applied_at.is_not(None))
            .order_by(PlanModel.applied_at, PlanModel.id)
        ).all()
        billed = session.execute(
            sa.select(
                ReplicaModel.launched_at,
                ReplicaModel.terminated_at,
                ReplicaModel.price_usd_per_hour,
            ).where(ReplicaModel.service == service, ReplicaModel.launched_at.is_not(None))
        ).all()
        documents = [planner_document(session, plan.document) for plan in plans]
    applied = [
        {
            "id": plan.id,
            "applied_at": plan.applied_at,
            "origin": plan.origin,
            "cost_usd_per_hour": plan.cost_usd_per_hour,
            "on_demand_usd_per_hour": _on_demand_baseline(document),
        }
        for plan, document in zip(plans, documents, strict=True)
        if plan.applied_at <= now
    ]
    intervals = [
        (row.launched_at, min(row.terminated_at or now, now), row.price_usd_per_hour)
        for row in billed
        if row.launched_at < now
    ]
    starts = [plan["applied_at"] for plan in applied]
    moments = {*starts, *(a for a, _, _ in intervals), *(b for _, b, _ in intervals)}
    changes = sorted(moment for moment in moments if moment < now)
    points: list[dict[str, Any]] = []
    total_actual_usd = total_on_demand_usd = 0.0
    for index, moment in enumerate(changes):
        actual = sum(price for a, b, price in intervals if a <= moment < b)
        in_force = bisect_right(starts, moment) - 1
        baseline = applied[in_force]["on_demand_usd_per_hour"] if in_force >= 0 else None
        points.append(
            {
                "time": moment,
                "actual_usd_per_hour": actual,
                "on_demand_usd_per_hour": baseline,
                "cumulative_actual_usd": total_actual_usd,
                "cumulative_on_demand_usd": total_on_demand_usd,
            }
        )
        until = changes[index + 1] if index + 1 < len(changes) else now
        hours = (until - moment).total_seconds() / 3600.0
        total_actual_usd += actual * hours
        total_on_demand_usd += (baseline or 0.0) * hours
    if points:
        points.append(
            {
                "time": now,
                "actual_usd_per_hour": points[-1]["actual_usd_per_hour"],
                "on_demand_usd_per_hour": points[-1]["on_demand_usd_per_hour"],
                "cumulative_actual_usd": total_actual_usd,
                "cumulative_on_demand_usd": total_on_demand_usd,
            }
        )
    saving_usd = total_on_demand_usd - total_actual_usd
    return {
        "service": service,
        "as_of": now,
        "points": points,
        "plans": applied,
        "actual_usd": total_actual_usd,
        "on_demand_usd": total_on_demand_usd,
        "saving_usd": saving_usd,
        "saving_pct": 100.0 * saving_usd / total_on_demand_usd if total_on_demand_usd else None,
        "sample": any(_is_sample(document) for document in documents),
    }


def _on_demand_baseline(document: dict[str, Any] | None) -> float | None:
    baseline = (document or {}).get("baselines", {}).get("all_on_demand") or {}
    cost = baseline.get("cost_usd_per_hour")
    return float(cost) if cost is not None else None


def _is_sample(document: dict[str, Any] | None) -> bool:
    return any("sample" in age.get("sources", ()) for age in (document or {}).get("data", ()))
