"""Pools that just failed with capacity or quota errors, left out of plans for a while."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from oracle.models import CapacityErrorModel
from scheduler.actuator.types import Pool


def mark_unavailable(
    session: Session, pool: Pool, *, error_code: str, now: datetime, ttl_s: float
) -> None:
    session.add(
        CapacityErrorModel(
            source="aws",
            source_detail="actuator launch",
            observed_at=now,
            region=pool.region,
            zone=pool.zone,
            instance_type=pool.instance_type,
            market=pool.market,
            error_code=error_code,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )


def unavailable_pools(session: Session, *, now: datetime) -> set[Pool]:
    rows = session.execute(
        sa.select(
            CapacityErrorModel.region,
            CapacityErrorModel.zone,
            CapacityErrorModel.instance_type,
            CapacityErrorModel.market,
        ).where(CapacityErrorModel.expires_at > now)
    ).all()
    return {Pool(*row) for row in rows}
