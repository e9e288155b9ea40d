"""Losses of capacity per pool: interruption notices and rebalance signals (EC2's, and those
imported from traces), and capacity errors met at launch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import CapacityErrorModel, InterruptionEventModel


def interruptions(
    engine: Engine, *, days: int = 90, now: datetime | None = None, limit: int = 5000
) -> dict[str, Any]:
    """Events of the last ``days`` (newest ``limit``), oldest first, each with its pool
    (``region/zone/instance_type/market``), kind, source and time."""
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    with transaction(engine) as session:
        notices = session.scalars(
            sa.select(InterruptionEventModel)
            .where(
                InterruptionEventModel.observed_at > start,
                InterruptionEventModel.observed_at <= now,
            )
            .order_by(InterruptionEventModel.observed_at.desc())
            .limit(limit)
        ).all()
        errors = session.scalars(
            sa.select(CapacityErrorModel)
            .where(CapacityErrorModel.observed_at > start, CapacityErrorModel.observed_at <= now)
            .order_by(CapacityErrorModel.observed_at.desc())
            .limit(limit)
        ).all()
        events: list[dict[str, Any]] = [
            {
                "time": row.observed_at,
                "pool": f"{row.region}/{row.zone}/{row.instance_type}/spot",
                "kind": row.kind,
                "detail": row.instance_id,
                "source": row.source,
            }
            for row in notices
        ] + [
            {
                "time": row.observed_at,
                "pool": f"{row.region}/{row.zone}/{row.instance_type}/{row.market}",
                "kind": "capacity-error",
                "detail": row.error_code,
                "source": row.source,
            }
            for row in errors
        ]
    events.sort(key=lambda event: (event["time"], event["pool"], event["kind"]))
    events = events[-limit:]
    counts: dict[str, int] = {}
    for event in events:
        counts[event["kind"]] = counts.get(event["kind"], 0) + 1
    return {
        "as_of": now,
        "days": days,
        "events": events,
        "counts": counts,
        "pools": sorted({event["pool"] for event in events}),
        "sample": any(event["source"] == "sample" for event in events),
    }
