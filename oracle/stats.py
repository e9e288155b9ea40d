"""What the oracle answers per pool: price statistics, risk and the age of each fact.

Spot prices are step functions: a change record holds from its timestamp until the next record
of the same pool (AWS also returns the last change before a query's StartTime, so a window's
opening price is the last record at or before the window start, forward-filled).
Every figure is evaluated ``as_of`` a moment: only facts observed at or before it count, and
windows end there. That is what ``--as-of`` and backtesting stand on.

When a fact counts as observed: a spot price change record from its ``timestamp`` (AWS
publishes a change when it happens, so a later sync that stored it still tells what was known
then), an on-demand price from its ``effective_date``, a placement score or an Advisor entry
from its ``observed_at``.

All spot price figures are time-weighted over the step function. Windows of 7, 30 and 90 days
end at ``as_of``; a window holds the price in effect at its start (the last record before it)
and every change inside it. Where a pool's history starts inside a window, the figures cover
the part of the window it covers.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import sqlalchemy as sa

from oracle.tables import (
    interruption_frequencies,
    offerings,
    on_demand_prices,
    placement_scores,
    spot_prices,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Window lengths of the mean prices, in days; the longest is also the p95/max/volatility window.
WINDOW_DAYS = (7, 30, 90)
#: A pool is "near on-demand" while its spot price is above this share of the on-demand price.
NEAR_ON_DEMAND_FRACTION = 0.8


@dataclass(slots=True)
class PoolStats:
    """One spot pool (region, zone, instance type) as known at ``as_of``.

    Prices in USD per instance-hour; ``None`` where the oracle holds no such fact.
    ``zone`` is the AZ ID when known, else the AZ name.

    Treated as immutable, but not frozen: a backtest builds one per pool at every replan
    (about 600,000 in 90 days), and a frozen dataclass's ``__init__`` costs 3.5 times as
    much (28 fields: 3.5 us against 0.9 us).
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
    #: Highest price in force during the 90 days, the current price included.
    max_price_usd_per_hour_90d: float | None
    #: Time-weighted standard deviation over 90 days divided by the 90-day mean.
    volatility_90d: float | None
    #: Share of the 90 days (0 to 1) the price was above 80% of the on-demand price.
    share_above_80pct_on_demand_90d: float | None
    #: Price changes over 90 days (None when the statistics read fewer days).
    changes_90d: int | None
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


def pool_stats(
    session: Session | sa.Connection,
    *,
    as_of: datetime | None = None,
    regions: Collection[str] | None = None,
    instance_types: Collection[str] | None = None,
    product_description: str = "Linux/UNIX",
    history_days: int = max(WINDOW_DAYS),
) -> list[PoolStats]:
    """The statistics of every spot pool with a price at or before ``as_of`` (default: now),
    optionally narrowed to ``regions`` and ``instance_types``; sorted by region, zone, type.

    One query reads the price rows of the selected pools; the figures are computed with numpy
    over all pools at once. ``history_days`` (one of :data:`WINDOW_DAYS`) reads only the last
    so many days: the figures over longer windows are then ``None`` (the planner, which prices
    pools from the current price and the 7-day mean, reads 7 days, a tenth of the rows).
    """
    if history_days not in WINDOW_DAYS:
        raise ValueError(f"history_days must be one of {WINDOW_DAYS}, got {history_days}")
    as_of = _as_of(as_of)
    frame = _price_rows(
        session,
        as_of=as_of,
        regions=regions,
        instance_types=instance_types,
        product_description=product_description,
        history_days=history_days,
    )
    if len(frame["pool"]) == 0:
        return []
    operating_system = _operating_system(product_description)
    offers = {
        (offer.region, offer.instance_type): offer
        for offer in on_demand_offers(
            session,
            as_of=as_of,
            regions=regions,
            instance_types=instance_types,
            operating_system=operating_system,
        )
    }
    last = np.r_[frame["pool"][1:] != frame["pool"][:-1], True]
    pools = {name: column[last] for name, column in frame.items()}
    keys = list(zip(pools["region"], pools["instance_type"], strict=True))
    on_demand = np.array(
        [offers[key].price_usd_per_hour if key in offers else np.nan for key in keys]
    )
    figures = statistics_as_of(
        frame["pool"],
        frame["time_s"],
        frame["price"],
        as_of_s=as_of.timestamp(),
        on_demand_usd_per_hour=on_demand,
        history_days=history_days,
    )
    placements = _placement_scores(session, as_of=as_of, regions=regions)
    advisor = _advisor(session, as_of=as_of, regions=regions, operating_system=operating_system)
    results = []
    names = list(pools)
    for index, values in enumerate(zip(*pools.values(), strict=True)):
        row = _Row(**dict(zip(names, values, strict=True)))
        offer = offers.get((row.region, row.instance_type))
        scores, placement_source, placement_at = _pool_placement(
            placements, row.region, row.availability_zone_id, row.instance_type
        )
        advice = advisor.get((row.region, row.instance_type))
        results.append(
            PoolStats(
                region=row.region,
                zone=row.zone,
                availability_zone=row.availability_zone,
                availability_zone_id=row.availability_zone_id,
                instance_type=row.instance_type,
                as_of=as_of,
                current_price_usd_per_hour=_number(figures["current"][index]),
                mean_price_usd_per_hour_7d=_number(figures["mean_7d"][index]),
                mean_price_usd_per_hour_30d=_number(figures["mean_30d"][index]),
                mean_price_usd_per_hour_90d=_number(figures["mean_90d"][index]),
                p95_price_usd_per_hour_90d=_number(figures["p95_90d"][index]),
                max_price_usd_per_hour_90d=_number(figures["max_90d"][index]),
                volatility_90d=_number(figures["volatility_90d"][index]),
                share_above_80pct_on_demand_90d=_number(figures["share_near_on_demand"][index]),
                changes_90d=_count(figures["changes_90d"][index]),
                price_source=row.source,
                price_observed_at=_datetime(float(row.time_s)),
                on_demand_price_usd_per_hour=offer.price_usd_per_hour if offer else None,
                on_demand_source=offer.source if offer else None,
                on_demand_observed_at=offer.observed_at if offer else None,
                placement_scores=scores,
                placement_source=placement_source,
                placement_observed_at=placement_at,
                interruption_band_index=advice.band_index if advice else None,
                interruption_band_label=advice.band_label if advice else None,
                savings_pct=advice.savings_pct if advice else None,
                advisor_source=advice.source if advice else None,
                advisor_observed_at=advice.observed_at if advice else None,
            )
        )
    # The same order on every backend (PostgreSQL's collation may sort text differently).
    return sorted(results, key=lambda stats: (stats.region, stats.zone, stats.instance_type))


def on_demand_offers(
    session: Session | sa.Connection,
    *,
    as_of: datetime | None = None,
    regions: Collection[str] | None = None,
    instance_types: Collection[str] | None = None,
    operating_system: str = "Linux",
) -> list[OnDemandOffer]:
    """The on-demand list price in effect at ``as_of`` per (region, instance type), newest
    effective date first among ties, with the zones that offer the type; sorted."""
    as_of = _as_of(as_of)
    table = on_demand_prices
    conditions = [
        table.c.operating_system == operating_system,
        table.c.effective_date <= as_of,
        *narrowing(table, regions, instance_types),
    ]
    latest, at_latest = _latest_per_type(table, "effective_date", conditions)
    query = (
        sa.select(
            table.c.region,
            table.c.instance_type,
            table.c.price_usd_per_hour,
            table.c.source,
            table.c.effective_date,
            table.c.observed_at,
        )
        .join(latest, at_latest)
        .where(table.c.operating_system == operating_system)
        .order_by(table.c.region, table.c.instance_type, table.c.observed_at)
    )
    chosen: dict[tuple[str, str], Any] = {}
    for row in session.execute(query):
        chosen[(row.region, row.instance_type)] = row  # the newest observation wins
    zones = offered_zones(session, regions=regions, instance_types=instance_types)
    return [
        OnDemandOffer(
            region=region,
            instance_type=instance_type,
            price_usd_per_hour=float(row.price_usd_per_hour),
            source=row.source,
            observed_at=row.effective_date,
            zones=zones.get((region, instance_type), ()),
        )
        for (region, instance_type), row in sorted(chosen.items())
    ]


def statistics_as_of(
    pool: np.ndarray,
    time_s: np.ndarray,
    price: np.ndarray,
    *,
    as_of_s: float,
    on_demand_usd_per_hour: np.ndarray,
    history_days: int = max(WINDOW_DAYS),
) -> dict[str, np.ndarray]:
    """The figures as known at ``as_of_s`` from price rows read over the last ``history_days``
    (each pool's last change at or before the start, then every later one up to ``as_of_s``):
    :func:`step_statistics`, with the figures over windows longer than ``history_days`` NaN.
    The one kernel behind :func:`pool_stats` (``--as-of``) and the backtest's views."""
    figures = step_statistics(
        pool, time_s, price, as_of_s=as_of_s, on_demand_usd_per_hour=on_demand_usd_per_hour
    )
    if history_days < max(WINDOW_DAYS):
        _blank_longer_windows(figures, history_days)
    return figures


def step_statistics(
    pool: np.ndarray,
    time_s: np.ndarray,
    price: np.ndarray,
    *,
    as_of_s: float,
    on_demand_usd_per_hour: np.ndarray,
) -> dict[str, np.ndarray]:
    """Time-weighted statistics of many step functions at once.

    ``pool`` (0..n-1, non-decreasing), ``time_s`` (epoch seconds, ascending within a pool, all
    at or before ``as_of_s``) and ``price`` describe change records; each price holds until the
    pool's next record, the last one until ``as_of_s``. ``on_demand_usd_per_hour`` has one
    entry per pool (NaN when unknown). Returns one array per figure, indexed by pool: current,
    mean_7d, mean_30d, mean_90d, p95_90d, max_90d, volatility_90d, share_near_on_demand,
    changes_90d, last_time_s.
    """
    count = int(pool[-1]) + 1 if pool.size else 0
    last = np.r_[pool[1:] != pool[:-1], True]
    segment_end = np.where(last, as_of_s, np.r_[time_s[1:], as_of_s])
    current = np.full(count, np.nan)
    current[pool[last]] = price[last]
    last_time = np.full(count, np.nan)
    last_time[pool[last]] = time_s[last]
    figures: dict[str, np.ndarray] = {"current": current, "last_time_s": last_time}
    for days in WINDOW_DAYS:
        duration, total = window_durations(
            pool, time_s, segment_end, as_of_s - days * 86_400.0, count
        )
        integral = np.bincount(pool, weights=duration * price, minlength=count)
        figures[f"mean_{days}d"] = ratio(integral, total, current)
    start_s = as_of_s - max(WINDOW_DAYS) * 86_400.0
    duration, total = window_durations(pool, time_s, segment_end, start_s, count)
    mean = figures[f"mean_{max(WINDOW_DAYS)}d"]
    covered = duration > 0
    maximum = current.copy()
    np.fmax.at(maximum, pool[covered], price[covered])
    figures["max_90d"] = maximum
    order = np.lexsort((price, pool))
    figures["p95_90d"] = weighted_quantile(
        pool[order], price[order], duration[order], total, 0.95, current
    )
    squares = np.bincount(pool, weights=duration * (price - mean[pool]) ** 2, minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(ratio(squares, total, np.zeros(count)))
        figures["volatility_90d"] = np.where(mean > 0, spread / mean, np.nan)
    near = price > NEAR_ON_DEMAND_FRACTION * on_demand_usd_per_hour[pool]
    share = ratio(
        np.bincount(pool, weights=duration * near, minlength=count),
        total,
        (current > NEAR_ON_DEMAND_FRACTION * on_demand_usd_per_hour).astype(float),
    )
    figures["share_near_on_demand"] = np.where(np.isnan(on_demand_usd_per_hour), np.nan, share)
    same_pool = np.r_[False, pool[1:] == pool[:-1]]
    previous = np.r_[np.nan, price[:-1]]
    changed = same_pool & (price != previous) & (time_s > start_s) & (time_s <= as_of_s)
    figures["changes_90d"] = np.bincount(pool, weights=changed, minlength=count).astype(int)
    return figures


def pool_stats_to_dict(stats: PoolStats) -> dict[str, Any]:
    """The JSON shape of one pool (``scheduler oracle stats --format json``, the API).

    Every field of :class:`PoolStats`, plus ``source`` (the price's source), ``sample`` (true
    when any figure comes from the embedded sample market) and an ``*_age_s`` per fact: seconds
    from its observation to ``as_of``. Placement scores are keyed by target capacity as strings.
    """
    payload: dict[str, Any] = {
        "region": stats.region,
        "availability_zone": stats.availability_zone,
        "availability_zone_id": stats.availability_zone_id,
        "zone": stats.zone,
        "instance_type": stats.instance_type,
        "as_of": stats.as_of.isoformat(),
        "source": stats.price_source,
        "sample": "sample"
        in (
            stats.price_source,
            stats.on_demand_source,
            stats.placement_source,
            stats.advisor_source,
        ),
    }
    for name in (
        "current_price_usd_per_hour",
        "mean_price_usd_per_hour_7d",
        "mean_price_usd_per_hour_30d",
        "mean_price_usd_per_hour_90d",
        "p95_price_usd_per_hour_90d",
        "max_price_usd_per_hour_90d",
        "volatility_90d",
        "share_above_80pct_on_demand_90d",
        "changes_90d",
        "on_demand_price_usd_per_hour",
    ):
        payload[name] = getattr(stats, name)
    payload["placement_scores"] = {
        str(capacity): score for capacity, score in stats.placement_scores.items()
    }
    for name in ("interruption_band_index", "interruption_band_label", "savings_pct"):
        payload[name] = getattr(stats, name)
    for fact in ("price", "on_demand", "placement", "advisor"):
        observed: datetime | None = getattr(stats, f"{fact}_observed_at")
        payload[f"{fact}_source"] = getattr(stats, f"{fact}_source")
        payload[f"{fact}_observed_at"] = observed.isoformat() if observed else None
        payload[f"{fact}_age_s"] = (stats.as_of - observed).total_seconds() if observed else None
    return payload


def window_durations(
    pool: np.ndarray, time_s: np.ndarray, segment_end: np.ndarray, start_s: float, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's seconds inside ``[start_s, end]``, and their total per pool."""
    duration = np.clip(segment_end - np.maximum(time_s, start_s), 0.0, None)
    return duration, np.bincount(pool, weights=duration, minlength=count)


def ratio(numerator: np.ndarray, total: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """numerator / total, or ``fallback`` where a pool covers no time (its only price starts
    exactly at ``as_of``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, numerator / np.where(total > 0, total, 1.0), fallback)


def weighted_quantile(
    pools: np.ndarray,
    prices: np.ndarray,
    weights: np.ndarray,
    total: np.ndarray,
    quantile: float,
    fallback: np.ndarray,
) -> np.ndarray:
    """Per pool, the smallest price held for at least ``quantile`` of the covered time, over
    rows ordered by (pool, price)."""
    cumulative = np.cumsum(weights)
    group_start = np.r_[True, pools[1:] != pools[:-1]]
    offset = np.maximum.accumulate(np.where(group_start, cumulative - weights, 0.0))
    within = cumulative - offset
    # A relative tolerance keeps float rounding from skipping the exact quantile.
    reached = (within >= quantile * total[pools] * (1 - 1e-12)) & (weights > 0)
    first = np.full(total.size, prices.size, dtype=np.int64)
    np.minimum.at(first, pools[reached], np.flatnonzero(reached))
    found = first < prices.size
    result = fallback.copy()
    result[found] = prices[first[found]]
    return result


def _blank_longer_windows(figures: dict[str, np.ndarray], history_days: int) -> None:
    """Set to NaN the figures over windows longer than the ``history_days`` read."""
    for days in WINDOW_DAYS:
        if days > history_days:
            figures[f"mean_{days}d"] = np.full(figures[f"mean_{days}d"].shape, np.nan)
    for name in ("p95_90d", "max_90d", "volatility_90d", "share_near_on_demand", "changes_90d"):
        figures[name] = np.full(figures[name].shape, np.nan)


def _count(value: float) -> int | None:
    return None if value != value else int(value)


def _price_rows(
    session: Session | sa.Connection,
    *,
    as_of: datetime,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    product_description: str,
    history_days: int = max(WINDOW_DAYS),
) -> dict[str, np.ndarray]:
    """The price rows of the selected pools, one numpy array per column: every change in the
    last ``history_days``, plus each pool's last change at or before its start (one UNION ALL
    query), sorted by pool and time, with ``pool`` numbering the pools 0..n-1 and ``time_s`` in
    epoch seconds. (numpy alone: pandas would cost every plan about 0.3 s to import.)"""
    table = spot_prices
    start = as_of - timedelta(days=history_days)
    conditions = [
        table.c.product_description == product_description,
        *narrowing(table, regions, instance_types),
    ]
    pool_columns = (table.c.region, table.c.zone, table.c.instance_type)
    opening = (
        sa.select(*pool_columns, sa.func.max(table.c.timestamp).label("timestamp"))
        .where(*conditions, table.c.timestamp <= start)
        .group_by(*pool_columns)
        .subquery()
    )
    columns = (
        table.c.region,
        table.c.zone,
        table.c.availability_zone,
        table.c.availability_zone_id,
        table.c.instance_type,
        _epoch_seconds(table.c.timestamp, _dialect_name(session)).label("time_s"),
        table.c.price_usd_per_hour,
        table.c.source,
    )
    before = (
        sa.select(*columns)
        .join(
            opening,
            sa.and_(
                table.c.region == opening.c.region,
                table.c.zone == opening.c.zone,
                table.c.instance_type == opening.c.instance_type,
                table.c.timestamp == opening.c.timestamp,
            ),
        )
        .where(table.c.product_description == product_description)
    )
    inside = sa.select(*columns).where(
        *conditions, table.c.timestamp > start, table.c.timestamp <= as_of
    )
    names = [
        "region",
        "zone",
        "availability_zone",
        "availability_zone_id",
        "instance_type",
        "time_s",
        "price",
        "source",
    ]
    query = sa.union_all(before, inside).order_by(
        *(sa.literal_column(name) for name in ("region", "zone", "instance_type", "time_s"))
    )
    result: Any = session.execute(query)
    # Plain tuples from the driver's cursor: the row types need no conversion (epoch seconds
    # and floats), and skipping SQLAlchemy's Row objects halves the read time.
    rows = result.cursor.fetchall()
    result.close()
    by_column = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    frame = {
        name: np.array(values, dtype=float if name in ("time_s", "price") else object)
        for name, values in zip(names, by_column, strict=True)
    }
    # Rows come sorted by pool, so a pool starts where its key changes.
    starts = np.zeros(len(rows), dtype=bool)
    if rows:
        starts[0] = True
    for name in ("region", "zone", "instance_type"):
        key = frame[name]
        starts[1:] |= key[1:] != key[:-1]
    frame["pool"] = np.cumsum(starts) - 1
    return frame


@dataclass(frozen=True)
class _Row:
    """One pool's last price row (what :func:`pool_stats` reads per pool)."""

    region: str
    zone: str
    availability_zone: str
    availability_zone_id: str
    instance_type: str
    time_s: float
    price: float
    source: str
    pool: int


def _dialect_name(session: Session | sa.Connection) -> str:
    bind = session if isinstance(session, sa.Connection) else session.get_bind()
    return bind.dialect.name


def _epoch_seconds(column: Any, dialect: str) -> Any:
    """``column`` as epoch seconds computed by the database, which spares building a Python
    datetime per row (most of the read time on large histories)."""
    if dialect == "sqlite":
        # julianday() is a double of days: about 40 microseconds of resolution, so round to ms.
        return sa.func.round((sa.func.julianday(column) - 2440587.5) * 86400.0, 3)
    # date_part returns a double; EXTRACT returns numeric (Decimal objects) since PostgreSQL 14.
    return sa.func.date_part("epoch", column)


class _Placement(NamedTuple):
    """One placement answer, with how many instance types its question named."""

    asked_count: int
    target_capacity: int
    score: int
    source: str
    observed_at: datetime


def _placement_scores(
    session: Session | sa.Connection, *, as_of: datetime, regions: Collection[str] | None
) -> dict[tuple[str, str], dict[str, list[_Placement]]]:
    """The latest placement answer at or before ``as_of`` per (region, scope, types asked,
    capacity), grouped by (region, scope) and then by each instance type asked about (in the
    order the database returned them)."""
    table = placement_scores
    group = (table.c.region, table.c.scope, table.c.instance_types, table.c.target_capacity)
    conditions = [table.c.observed_at <= as_of]
    if regions:
        conditions.append(table.c.region.in_(list(regions)))
    latest = (
        sa.select(*group, sa.func.max(table.c.observed_at).label("observed_at"))
        .where(*conditions)
        .group_by(*group)
        .subquery()
    )
    query = sa.select(
        table.c.region,
        table.c.scope,
        table.c.instance_types,
        table.c.target_capacity,
        table.c.score,
        table.c.source,
        table.c.observed_at,
    ).join(
        latest,
        sa.and_(
            table.c.region == latest.c.region,
            table.c.scope == latest.c.scope,
            table.c.instance_types == latest.c.instance_types,
            table.c.target_capacity == latest.c.target_capacity,
            table.c.observed_at == latest.c.observed_at,
        ),
    )
    grouped: dict[tuple[str, str], dict[str, list[_Placement]]] = {}
    for row in session.execute(query):
        asked = row.instance_types.split(",")
        answer = _Placement(len(asked), row.target_capacity, row.score, row.source, row.observed_at)
        by_type = grouped.setdefault((row.region, row.scope), {})
        for instance_type in dict.fromkeys(asked):
            by_type.setdefault(instance_type, []).append(answer)
    return grouped


def _pool_placement(
    placements: dict[tuple[str, str], dict[str, list[_Placement]]],
    region: str,
    zone_id: str | None,
    instance_type: str,
) -> tuple[dict[int, int], str | None, datetime | None]:
    """A pool's scores per target capacity: from the AZ-level answers for its AZ ID, else the
    region-level ones. Among answers that asked about the type, the narrowest question (fewest
    types) wins, then the newest."""
    for scope in (zone_id, "region"):
        if scope is None:
            continue
        best: dict[int, _Placement] = {}
        for answer in placements.get((region, scope), {}).get(instance_type, ()):
            rank = (-answer.asked_count, answer.observed_at)
            held = best.get(answer.target_capacity)
            if held is None or rank > (-held.asked_count, held.observed_at):
                best[answer.target_capacity] = answer
        if best:
            newest = max(best.values(), key=lambda answer: answer.observed_at)
            scores = {capacity: int(answer.score) for capacity, answer in sorted(best.items())}
            return scores, newest.source, newest.observed_at
    return {}, None, None


def _advisor(
    session: Session | sa.Connection,
    *,
    as_of: datetime,
    regions: Collection[str] | None,
    operating_system: str,
) -> dict[tuple[str, str], Any]:
    """The latest Spot Advisor entry at or before ``as_of`` per (region, instance type)."""
    table = interruption_frequencies
    conditions = [table.c.observed_at <= as_of, table.c.operating_system == operating_system]
    if regions:
        conditions.append(table.c.region.in_(list(regions)))
    latest, at_latest = _latest_per_type(table, "observed_at", conditions)
    query = (
        sa.select(table).join(latest, at_latest).where(table.c.operating_system == operating_system)
    )
    return {(row.region, row.instance_type): row for row in session.execute(query)}


def _latest_per_type(
    table: Any, column: str, conditions: list[sa.ColumnElement[bool]]
) -> tuple[sa.Subquery, sa.ColumnElement[bool]]:
    """The latest ``column`` per (region, instance type) among the rows matching
    ``conditions``, and the condition that joins ``table``'s rows at it."""
    latest = (
        sa.select(
            table.c.region,
            table.c.instance_type,
            sa.func.max(table.c[column]).label(column),
        )
        .where(*conditions)
        .group_by(table.c.region, table.c.instance_type)
        .subquery()
    )
    return latest, sa.and_(
        table.c.region == latest.c.region,
        table.c.instance_type == latest.c.instance_type,
        table.c[column] == latest.c[column],
    )


def offered_zones(
    session: Session | sa.Connection,
    *,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
) -> dict[tuple[str, str], tuple[str, ...]]:
    table = offerings
    query = (
        sa.select(table.c.region, table.c.instance_type, table.c.zone)
        .where(*narrowing(table, regions, instance_types))
        .order_by(table.c.region, table.c.instance_type, table.c.zone)
    )
    zones: dict[tuple[str, str], list[str]] = {}
    for row in session.execute(query):
        zones.setdefault((row.region, row.instance_type), []).append(row.zone)
    return {key: tuple(value) for key, value in zones.items()}


def narrowing(
    table: Any,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if regions:
        conditions.append(table.c.region.in_(list(regions)))
    if instance_types:
        conditions.append(table.c.instance_type.in_(list(instance_types)))
    return conditions


def _operating_system(product_description: str) -> str:
    """The on-demand and Advisor operating system matching a spot product description."""
    return {"Linux/UNIX": "Linux", "Linux/UNIX (Amazon VPC)": "Linux"}.get(
        product_description, product_description.replace(" (Amazon VPC)", "")
    )


def _as_of(as_of: datetime | None) -> datetime:
    if as_of is None:
        return datetime.now(UTC)
    if as_of.tzinfo is None:
        raise ValueError(f"as_of={as_of.isoformat()} is naive: pass an aware UTC datetime")
    return as_of.astimezone(UTC)


def _number(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _datetime(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
