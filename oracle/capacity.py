"""Pools marked unavailable after insufficient-capacity errors, until their mark expires.

The actuator calls :func:`mark_unavailable` when a launch fails for lack of capacity; the
planner leaves the pool out while :func:`unavailable_pools` lists it.

Backoff: a pool that fails again soon after a mark is out of capacity for a long spell (spot
capacity losses run for hours: the 2023 traces' unavailable runs have a median of about an hour
and a heavy tail, ../shared/WORLD.md). Each earlier mark of the same pool within
:data:`BACKOFF_WINDOW_S` doubles the new mark's TTL, up to :data:`MAX_BACKOFF_MULTIPLE` times the
base (:func:`backoff_ttl_s`); the backtest marks its pools by the same rule.
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


#: Earlier marks of a pool within this window lengthen a new mark (seconds).
BACKOFF_WINDOW_S = 24 * 3600.0
#: The longest mark, as a multiple of the base TTL.
MAX_BACKOFF_MULTIPLE = 16.0


def backoff_ttl_s(base_ttl_s: float, earlier_marks: int) -> float:
    """The TTL of a mark after ``earlier_marks`` marks of the same pool within
    :data:`BACKOFF_WINDOW_S`: ``base x min(2^earlier, MAX_BACKOFF_MULTIPLE)``."""
    return base_ttl_s * min(2.0 ** min(earlier_marks, 64), MAX_BACKOFF_MULTIPLE)


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
    """Record that the pool cannot be launched in for ``ttl_s`` seconds from ``now``, longer
    when it was marked before within :data:`BACKOFF_WINDOW_S` (:func:`backoff_ttl_s`)."""
    from oracle.models import CapacityErrorModel  # the ORM, for writers only (oracle.tables)

    if market not in MARKETS:
        raise ValueError(f"market must be one of {MARKETS}, got {market!r}")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    now = now or datetime.now(UTC)
    table = capacity_errors
    earlier = session.scalar(
        sa.select(sa.func.count())
        .select_from(table)
        .where(
            table.c.region == region,
            table.c.zone == zone,
            table.c.instance_type == instance_type,
            table.c.market == market,
            table.c.observed_at > now - timedelta(seconds=BACKOFF_WINDOW_S),
            table.c.observed_at <= now,
        )
    )
    expires_at = now + timedelta(seconds=backoff_ttl_s(ttl_s, int(earlier or 0)))
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
