"""What the oracle answers per pool: price statistics, risk and the age of each fact.

Spot prices are step functions: a change record holds from its timestamp until the next record
of the same pool (AWS also returns the last change before a query's StartTime, so a window's
opening price is the last record at or before the window start, forward-filled).
Every figure is evaluated ``as_of`` a moment: only facts observed at or before it count, and
windows end there. That is what ``--as-of`` and backtesting stand on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PoolStats:
    """One spot pool (region, zone, instance type) as known at ``as_of``.

    Prices in USD per instance-hour; ``None`` where the oracle holds no such fact.
    ``zone`` is the AZ ID when known, else the AZ name.
    """

    region: str
    zone: str
    availability_zone: str | None
    availability_zone_id: str | None
    instance_type: str
    as_of: datetime
    current_price_usd_per_hour: float | None
    mean_price_usd_per_hour_7d: float | None
    mean_price_usd_per_hour_30d: float | None
    mean_price_usd_per_hour_90d: float | None
    p95_price_usd_per_hour_90d: float | None
    max_price_usd_per_hour_90d: float | None
    #: Time-weighted standard deviation over 90 days divided by the 90-day mean.
    volatility_90d: float | None
    #: Share of the 90 days (0 to 1) the price was above 80% of the on-demand price.
    share_above_80pct_on_demand_90d: float | None
    changes_90d: int
    price_source: str | None
    #: Timestamp of the latest price change record at or before ``as_of``.
    price_observed_at: datetime | None
    on_demand_price_usd_per_hour: float | None
    on_demand_source: str | None
    on_demand_observed_at: datetime | None
    #: Latest placement score per target capacity, e.g. {1: 9, 4: 7, 16: 3}.
    placement_scores: dict[int, int]
    placement_source: str | None
    placement_observed_at: datetime | None
    #: Spot Instance Advisor band: 0 "<5%", 1 "5-10%", 2 "10-15%", 3 "15-20%", 4 ">20%".
    interruption_band_index: int | None
    interruption_band_label: str | None
    savings_pct: float | None
    advisor_source: str | None
    advisor_observed_at: datetime | None


@dataclass(frozen=True)
class OnDemandOffer:
    """An instance type's on-demand list price in a region, and the zones that offer it."""

    region: str
    instance_type: str
    price_usd_per_hour: float
    source: str
    observed_at: datetime
    #: Zones (AZ ID when known, else AZ name) offering the type; empty when unknown.
    zones: tuple[str, ...]
