"""Pools marked unavailable after insufficient-capacity errors, until their mark expires.

The actuator calls :func:`mark_unavailable` when a launch fails for lack of capacity; the
planner leaves the pool out while :func:`unavailable_pools` lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from oracle.tables import capacity_errors

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MARKETS = ("spot", "on-demand")


@dataclass(frozen=True)
class UnavailablePool:
    region: str
    zone: str
    instance_type: str
    market: str
    error_code: str
    observed_at: datetime
    expires_at: datetime


def mark_unavailable(
    session: Session,
    *,
    region: str,
    zone: str,
    instance_type: str,
    market: str,
    ttl_s: float,
    error_code: str = "InsufficientInstanceCapacity",
    now: datetime | None = None,
    source: str = "aws",
    source_detail: str = "",
) -> UnavailablePool:
    """Record that the pool cannot be launched in for ``ttl_s`` seconds from ``now``."""
    from oracle.models import CapacityErrorModel  # the ORM, for writers only (oracle.tables)

    if market not in MARKETS:
        raise ValueError(f"market must be one of {MARKETS}, got {market!r}")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    now = now or datetime.now(UTC)
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(
        CapacityErrorModel(
            region=region,
            zone=zone,
            instance_type=instance_type,
            market=market,
            error_code=error_code,
            expires_at=expires_at,
            observed_at=now,
            source=source,
            source_detail=source_detail,
        )
    )
    session.flush()
    return UnavailablePool(region, zone, instance_type, market, error_code, now, expires_at)


def unavailable_pools(
    session: Session | sa.Connection, *, as_of: datetime | None = None
) -> list[UnavailablePool]:
    """Pools with a mark observed at or before ``as_of`` that has not expired by then.

    A pool marked more than once is listed once, with the mark that expires last.
    """
    as_of = as_of or datetime.now(UTC)
    table = capacity_errors
    rows = session.execute(
        sa.select(table)
        .where(table.c.observed_at <= as_of, table.c.expires_at > as_of)
        .order_by(table.c.expires_at)
    )
    latest: dict[tuple[str, str, str, str], UnavailablePool] = {}
    for row in rows:
        key = (row.region, row.zone, row.instance_type, row.market)
        latest[key] = UnavailablePool(
            row.region,
            row.zone,
            row.instance_type,
            row.market,
            row.error_code,
            row.observed_at,
            row.expires_at,
        )
    return sorted(latest.values(), key=lambda pool: (pool.region, pool.zone, pool.instance_type))
