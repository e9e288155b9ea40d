"""The oracle's history in memory, loaded once, and views of it as known at a moment.

:meth:`MarketHistory.load` reads every spot price change, on-demand price, Spot Advisor entry,
placement score, offering and instance spec in a handful of queries. Per spot pool the price
step function is a pair of numpy arrays (change times in epoch seconds, prices) inside one
concatenated array with per-pool offsets, and a running integral of price over time, so that
the cost of any interval is two lookups.

:meth:`MarketHistory.as_of` gives a :class:`MarketView`: the facts observed at or before a
moment and nothing later (no look-ahead), with the same :class:`~oracle.stats.PoolStats` and
:class:`~oracle.stats.OnDemandOffer` objects that :mod:`oracle.stats` computes from the
database, and under the same rules of when a fact counts as observed. Its statistics are the
figures of :func:`oracle.stats.step_statistics`, computed over the whole arrays at once with
the rows outside each window weighing zero (:func:`window_statistics`), without a query.

The world's truth (prices in force, what an instance-hour cost) is also here, for billing:
:meth:`MarketHistory.spot_cost` and :meth:`MarketHistory.on_demand_cost`. Only the simulator
calls those; policies see views.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from oracle import db
from oracle.models import (
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OfferingModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    SpotPriceModel,
)
from oracle.stats import NEAR_ON_DEMAND_FRACTION, WINDOW_DAYS, OnDemandOffer, PoolStats
from scheduler.planning.candidates import InstanceSpec
from scheduler.planning.model import PoolKey

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WINDOW_S = max(WINDOW_DAYS) * 86_400.0


@dataclass(frozen=True)
class SpotPool:
    """A spot pool of the history; ``index`` is its position in :attr:`MarketHistory.pools`."""

    index: int
    region: str
    zone: str
    availability_zone: str | None
    availability_zone_id: str | None
    instance_type: str

    @property
    def key(self) -> PoolKey:
        return PoolKey(self.region, self.zone, self.instance_type, "spot")


@dataclass(frozen=True)
class _Timeline:
    """Facts of one key, sorted by the moment each counts as observed."""

    times_s: list[float]
    values: list[Any]

    def at(self, t_s: float) -> Any | None:
        index = bisect.bisect_right(self.times_s, t_s) - 1
        return self.values[index] if index >= 0 else None

    def first(self) -> Any | None:
        return self.values[0] if self.values else None


@dataclass(frozen=True)
class _OnDemandPrice:
    price_usd_per_hour: float
    source: str
    effective: datetime


@dataclass(frozen=True)
class _Advice:
    band_index: int
    band_label: str
    savings_pct: float
    source: str
    observed_at: datetime


@dataclass(frozen=True)
class _Placement:
    scores: dict[int, int]
    source: str | None
    observed_at: datetime | None


@dataclass
class MarketHistory:
    """Everything the oracle holds about a set of pools, as arrays and timelines."""

    pools: list[SpotPool]
    #: Concatenated change records of all pools; pool i owns rows offsets[i]:offsets[i+1].
    offsets: NDArray[np.int64]
    times_s: NDArray[np.float64]
    prices_usd_per_hour: NDArray[np.float64]
    price_sources: list[str]
    on_demand: dict[tuple[str, str], _Timeline]
    advisor: dict[tuple[str, str], _Timeline]
    placement: dict[int, _Timeline]
    zones_offered: dict[tuple[str, str], tuple[str, ...]]
    instance_specs: dict[str, InstanceSpec]
    #: Running integral of price over time at each record (USD x hours), per pool from 0.
    integral_usd: NDArray[np.float64] = field(init=False)
    #: The pool of each row, and the rows ordered by (pool, price) for quantiles.
    pool_of_row: NDArray[np.int64] = field(init=False)
    price_order: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.integral_usd = _running_integral(self.offsets, self.times_s, self.prices_usd_per_hour)
        self.pool_of_row = np.repeat(np.arange(len(self.pools)), np.diff(self.offsets))
        self.price_order = np.lexsort((self.prices_usd_per_hour, self.pool_of_row))

    def rows_through(self, t_s: float) -> NDArray[np.int64]:
        """Per pool, the index one past its last row at or before ``t_s``: one binary search
        per pool over a key that orders rows by (pool, time)."""
        if self.times_s.size == 0:
            return np.zeros(len(self.pools), dtype=np.int64)
        first, span = self._key_origin
        offset = min(max(t_s - first, -0.5), span - 0.5)
        targets = np.arange(len(self.pools), dtype=np.float64) * span + offset
        return np.searchsorted(self._row_key, targets, side="right").astype(np.int64)

    @cached_property
    def _key_origin(self) -> tuple[float, float]:
        first = float(self.times_s.min())
        return first, float(self.times_s.max()) - first + 1.0

    @cached_property
    def _row_key(self) -> NDArray[np.float64]:
        first, span = self._key_origin
        return self.pool_of_row * span + (self.times_s - first)

    def type_mask(self, instance_types: Collection[str]) -> NDArray[np.bool_]:
        """Per pool, whether its instance type is among ``instance_types``."""
        wanted = set(instance_types)
        return np.array([pool.instance_type in wanted for pool in self.pools], dtype=bool)

    @classmethod
    def load(
        cls,
        engine: Engine,
        *,
        regions: Collection[str] | None = None,
        instance_types: Collection[str] | None = None,
        product_description: str = "Linux/UNIX",
        operating_system: str = "Linux",
    ) -> MarketHistory:
        """Read the oracle's history of the selected pools (default: all) in one session."""
        with db.session_factory(engine)() as session:
            connection = session.connection()
            spot = _spot_frame(connection, regions, instance_types, product_description)
            on_demand = _on_demand(connection, regions, instance_types, operating_system)
            advisor = _advisor(connection, regions, instance_types, operating_system)
            placements = _placement_rows(connection, regions)
            offered = _offered_zones(connection, regions, instance_types)
            specs = _instance_specs(connection)
        pools, offsets = _pools(spot)
        history = cls(
            pools=pools,
            offsets=offsets,
            times_s=spot["time_s"].to_numpy(dtype=np.float64),
            prices_usd_per_hour=spot["price"].to_numpy(dtype=np.float64),
            price_sources=spot["source"].tolist(),
            on_demand=on_demand,
            advisor=advisor,
            placement={},
            zones_offered=offered,
            instance_specs=specs,
        )
        history.placement = _placement_timelines(pools, placements)
        return history

    # --- time span ------------------------------------------------------------------------

    @property
    def first_s(self) -> float | None:
        return float(self.times_s.min()) if self.times_s.size else None

    @property
    def last_s(self) -> float | None:
        return float(self.times_s.max()) if self.times_s.size else None

    def as_of(self, moment: datetime) -> MarketView:
        """The facts known at ``moment`` (aware UTC) and nothing later."""
        if moment.tzinfo is None:
            raise ValueError(f"as_of={moment.isoformat()} is naive: pass an aware UTC datetime")
        return MarketView(self, moment.astimezone(UTC))

    # --- the world's truth, for billing -----------------------------------------------------

    def spot_price_at(self, pool: int, t_s: float) -> float | None:
        """The price in force in ``pool`` at ``t_s`` (``None`` before its first record)."""
        row = self._row_at(pool, t_s)
        return None if row < 0 else float(self.prices_usd_per_hour[row])

    def spot_cost(self, pool: int, start_s: float, end_s: float) -> float:
        """USD for one instance of ``pool`` running from ``start_s`` to ``end_s``, billed per
        second at the price in force (no price known yet: billed at the pool's first price)."""
        return self._integral_at(pool, end_s) - self._integral_at(pool, start_s)

    def on_demand_price_at(self, region: str, instance_type: str, t_s: float) -> float | None:
        timeline = self.on_demand.get((region, instance_type))
        if timeline is None:
            return None
        price = timeline.at(t_s) or timeline.first()
        return None if price is None else float(price.price_usd_per_hour)

    def on_demand_cost(
        self, region: str, instance_type: str, start_s: float, end_s: float
    ) -> float:
        """USD for one on-demand instance from ``start_s`` to ``end_s`` at the list price in
        force (changes such as price cuts apply from their effective date)."""
        timeline = self.on_demand[(region, instance_type)]
        total = 0.0
        moments = [start_s] + [t for t in timeline.times_s if start_s < t < end_s] + [end_s]
        for left, right in itertools.pairwise(moments):
            price = timeline.at(left) or timeline.first()
            assert price is not None  # a timeline holds at least one price
            total += price.price_usd_per_hour * (right - left) / 3600.0
        return total

    def on_demand_offers_at(self, t_s: float) -> list[OnDemandOffer]:
        step = bisect.bisect_right(self._on_demand_moments, t_s)
        offers = self._on_demand_cache.get(step)
        if offers is None:
            offers = self._on_demand_offers(t_s)
            self._on_demand_cache[step] = offers
        return offers

    @cached_property
    def pools_by_type(self) -> dict[tuple[str, str], list[SpotPool]]:
        """Spot pools per (region, instance type)."""
        grouped: dict[tuple[str, str], list[SpotPool]] = {}
        for pool in self.pools:
            grouped.setdefault((pool.region, pool.instance_type), []).append(pool)
        return grouped

    @cached_property
    def _on_demand_moments(self) -> list[float]:
        return sorted({t for timeline in self.on_demand.values() for t in timeline.times_s})

    @cached_property
    def _on_demand_cache(self) -> dict[int, list[OnDemandOffer]]:
        return {}

    def _on_demand_offers(self, t_s: float) -> list[OnDemandOffer]:
        offers = []
        for (region, instance_type), timeline in sorted(self.on_demand.items()):
            price = timeline.at(t_s)
            if price is None:
                continue
            offers.append(
                OnDemandOffer(
                    region=region,
                    instance_type=instance_type,
                    price_usd_per_hour=float(price.price_usd_per_hour),
                    source=price.source,
                    observed_at=price.effective,
                    zones=self.zones_offered.get((region, instance_type), ()),
                )
            )
        return offers

    @cached_property
    def pool_index(self) -> dict[PoolKey, int]:
        return {pool.key: pool.index for pool in self.pools}

    def cost(self, pool: PoolKey, start_s: float, end_s: float) -> float:
        """USD for one instance of ``pool`` (spot or on-demand) from ``start_s`` to ``end_s``."""
        if end_s <= start_s:
            return 0.0
        if pool.market == "spot":
            return self.spot_cost(self.pool_index[pool], start_s, end_s)
        return self.on_demand_cost(pool.region, pool.instance_type, start_s, end_s)

    def cost_curve(
        self, pool: PoolKey, start_s: float, times_s: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """USD for one instance of ``pool`` from ``start_s`` to each of ``times_s`` (each at or
        after ``start_s``), vectorised."""
        if pool.market == "spot":
            index = self.pool_index[pool]
            return self._integral_curve(index, times_s) - self._integral_at(index, start_s)
        return np.array(
            [self.on_demand_cost(pool.region, pool.instance_type, start_s, t) for t in times_s]
        )

    def band_at(self, region: str, instance_type: str, t_s: float) -> int | None:
        """The Advisor band in force at ``t_s``, else the earliest one the oracle holds."""
        timeline = self.advisor.get((region, instance_type))
        if timeline is None:
            return None
        advice = timeline.at(t_s) or timeline.first()
        return None if advice is None else int(advice.band_index)

    def pool_rows(self, pool: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The change times and prices of one pool."""
        lo, hi = int(self.offsets[pool]), int(self.offsets[pool + 1])
        return self.times_s[lo:hi], self.prices_usd_per_hour[lo:hi]

    def with_spot_prices(self, prices_usd_per_hour: NDArray[np.float64]) -> MarketHistory:
        """The same history with other prices at the same change times (for what-if tests)."""
        return MarketHistory(
            pools=self.pools,
            offsets=self.offsets,
            times_s=self.times_s,
            prices_usd_per_hour=np.asarray(prices_usd_per_hour, dtype=np.float64),
            price_sources=self.price_sources,
            on_demand=self.on_demand,
            advisor=self.advisor,
            placement=self.placement,
            zones_offered=self.zones_offered,
            instance_specs=self.instance_specs,
        )

    def _row_at(self, pool: int, t_s: float) -> int:
        lo, hi = int(self.offsets[pool]), int(self.offsets[pool + 1])
        row = lo + int(np.searchsorted(self.times_s[lo:hi], t_s, side="right")) - 1
        return row if row >= lo else -1

    def _integral_curve(self, pool: int, times_s: NDArray[np.float64]) -> NDArray[np.float64]:
        lo, hi = int(self.offsets[pool]), int(self.offsets[pool + 1])
        rows = lo + np.searchsorted(self.times_s[lo:hi], times_s, side="right") - 1
        rows = np.maximum(rows, lo)
        held_h = (times_s - self.times_s[rows]) / 3600.0
        return self.integral_usd[rows] + self.prices_usd_per_hour[rows] * held_h

    def _integral_at(self, pool: int, t_s: float) -> float:
        row = self._row_at(pool, t_s)
        if row < 0:
            first = int(self.offsets[pool])
            return float(self.prices_usd_per_hour[first]) * (t_s - self.times_s[first]) / 3600.0
        held_h = (t_s - self.times_s[row]) / 3600.0
        return float(self.integral_usd[row] + self.prices_usd_per_hour[row] * held_h)


class MarketView:
    """The history as known at :attr:`as_of`: only facts observed at or before it."""

    def __init__(self, history: MarketHistory, as_of: datetime) -> None:
        self.history = history
        self.as_of = as_of
        self.as_of_s = as_of.timestamp()

    @cached_property
    def current_rows(self) -> NDArray[np.int64]:
        """Per pool, the row of its latest change at or before ``as_of`` (-1: none yet)."""
        history = self.history
        ends = history.rows_through(self.as_of_s)
        rows = ends - 1
        return np.where(rows >= history.offsets[:-1], rows, -1)

    @cached_property
    def spot_prices_usd_per_hour(self) -> NDArray[np.float64]:
        """Per pool, the current price (NaN where the pool has no price yet)."""
        rows = self.current_rows
        prices = np.full(len(rows), np.nan)
        known = rows >= 0
        prices[known] = self.history.prices_usd_per_hour[rows[known]]
        return prices

    def on_demand_price(self, region: str, instance_type: str) -> float | None:
        timeline = self.history.on_demand.get((region, instance_type))
        price = timeline.at(self.as_of_s) if timeline else None
        return None if price is None else float(price.price_usd_per_hour)

    def placement_scores(self, pool: int) -> dict[int, int]:
        timeline = self.history.placement.get(pool)
        placement = timeline.at(self.as_of_s) if timeline else None
        return dict(placement.scores) if placement else {}

    def band_index(self, region: str, instance_type: str) -> int | None:
        timeline = self.history.advisor.get((region, instance_type))
        advice = timeline.at(self.as_of_s) if timeline else None
        return None if advice is None else int(advice.band_index)

    @cached_property
    def on_demand_offers(self) -> list[OnDemandOffer]:
        """As :func:`oracle.stats.on_demand_offers` answers at ``as_of``. The list changes only
        when a price takes effect, so the history keeps one per such step."""
        return self.history.on_demand_offers_at(self.as_of_s)

    @cached_property
    def pool_stats(self) -> list[PoolStats]:
        """As :func:`oracle.stats.pool_stats` answers at ``as_of``: every pool with a price."""
        return self.pool_stats_of(None)

    def pool_stats_of(self, instance_types: Collection[str] | None) -> list[PoolStats]:
        """:attr:`pool_stats`, narrowed to ``instance_types`` (``None``: all); cached per set."""
        key = None if instance_types is None else frozenset(instance_types)
        cached = self._stats_cache.get(key)
        if cached is None:
            cached = self._compute_stats(key)
            self._stats_cache[key] = cached
        return cached

    @cached_property
    def _stats_cache(self) -> dict[frozenset[str] | None, list[PoolStats]]:
        return {}

    def _compute_stats(self, instance_types: frozenset[str] | None) -> list[PoolStats]:
        history = self.history
        rows = self.current_rows
        selected = rows >= 0
        if instance_types is not None:
            selected &= history.type_mask(instance_types)
        known = np.flatnonzero(selected)
        if known.size == 0:
            return []
        offers = {(o.region, o.instance_type): o for o in self.on_demand_offers}
        on_demand = np.full(len(history.pools), np.nan)
        for index in known.tolist():
            pool = history.pools[index]
            offer = offers.get((pool.region, pool.instance_type))
            if offer is not None:
                on_demand[index] = offer.price_usd_per_hour
        figures = window_statistics(
            history, as_of_s=self.as_of_s, selected=selected, on_demand_usd_per_hour=on_demand
        )
        columns = {
            name: [None if value != value else value for value in figures[name][known].tolist()]
            for name in _FIGURES
        }
        changes = figures["changes_90d"][known].tolist()
        return [
            self._stats(number, history.pools[index], int(rows[index]), columns, changes, offers)
            for number, index in enumerate(known.tolist())
        ]

    def _stats(
        self,
        number: int,
        pool: SpotPool,
        row: int,
        columns: Mapping[str, list[float | None]],
        changes: list[int],
        offers: Mapping[tuple[str, str], OnDemandOffer],
    ) -> PoolStats:
        offer = offers.get((pool.region, pool.instance_type))
        timeline = self.history.placement.get(pool.index)
        placement = timeline.at(self.as_of_s) if timeline else None
        advisor = self.history.advisor.get((pool.region, pool.instance_type))
        advice = advisor.at(self.as_of_s) if advisor else None
        return PoolStats(
            region=pool.region,
            zone=pool.zone,
            availability_zone=pool.availability_zone,
            availability_zone_id=pool.availability_zone_id,
            instance_type=pool.instance_type,
            as_of=self.as_of,
            current_price_usd_per_hour=columns["current"][number],
            mean_price_usd_per_hour_7d=columns["mean_7d"][number],
            mean_price_usd_per_hour_30d=columns["mean_30d"][number],
            mean_price_usd_per_hour_90d=columns["mean_90d"][number],
            p95_price_usd_per_hour_90d=columns["p95_90d"][number],
            max_price_usd_per_hour_90d=columns["max_90d"][number],
            volatility_90d=columns["volatility_90d"][number],
            share_above_80pct_on_demand_90d=columns["share_near_on_demand"][number],
            changes_90d=int(changes[number]),
            price_source=self.history.price_sources[row],
            price_observed_at=_datetime(float(self.history.times_s[row])),
            on_demand_price_usd_per_hour=offer.price_usd_per_hour if offer else None,
            on_demand_source=offer.source if offer else None,
            on_demand_observed_at=offer.observed_at if offer else None,
            placement_scores=dict(placement.scores) if placement else {},
            placement_source=placement.source if placement else None,
            placement_observed_at=placement.observed_at if placement else None,
            interruption_band_index=advice.band_index if advice else None,
            interruption_band_label=advice.band_label if advice else None,
            savings_pct=advice.savings_pct if advice else None,
            advisor_source=advice.source if advice else None,
            advisor_observed_at=advice.observed_at if advice else None,
        )


_FIGURES = (
    "current",
    "mean_7d",
    "mean_30d",
    "mean_90d",
    "p95_90d",
    "max_90d",
    "volatility_90d",
    "share_near_on_demand",
)


def window_statistics(
    history: MarketHistory,
    *,
    as_of_s: float,
    selected: NDArray[np.bool_],
    on_demand_usd_per_hour: NDArray[np.float64],
) -> dict[str, NDArray[Any]]:
    """The figures of :func:`oracle.stats.step_statistics` for the ``selected`` pools (indexed
    by pool; others NaN), over the whole history's arrays at once.

    Rows after ``as_of_s``, rows of pools not selected and rows wholly before a window weigh
    zero, and adding zeros leaves every sum as the sliced computation makes it; the price
    order for the quantile is computed once per history instead of sorted per moment. A test
    holds these figures equal to :func:`oracle.stats.pool_stats`.
    """
    times, prices = history.times_s, history.prices_usd_per_hour
    pool = history.pool_of_row
    count = len(history.pools)
    ends = history.rows_through(as_of_s)
    current_row = ends - 1
    live = selected & (current_row >= history.offsets[:-1])
    in_time = times <= as_of_s
    use = in_time & live[pool]
    next_time = np.r_[times[1:], as_of_s]
    is_current = np.zeros(times.size, dtype=bool)
    is_current[current_row[live]] = True
    segment_end = np.where(is_current, as_of_s, np.minimum(next_time, as_of_s))
    segment_end = np.where(use, segment_end, -np.inf)
    current = np.full(count, np.nan)
    current[live] = prices[current_row[live]]
    figures: dict[str, NDArray[Any]] = {"current": current}
    for days in WINDOW_DAYS:
        duration = _durations(times, segment_end, as_of_s - days * 86_400.0)
        total = np.bincount(pool, weights=duration, minlength=count)
        integral = np.bincount(pool, weights=duration * prices, minlength=count)
        figures[f"mean_{days}d"] = _ratio(integral, total, current)
    start_s = as_of_s - _WINDOW_S
    duration = _durations(times, segment_end, start_s)
    total = np.bincount(pool, weights=duration, minlength=count)
    mean = figures[f"mean_{max(WINDOW_DAYS)}d"]
    covered = duration > 0
    maximum = current.copy()
    np.fmax.at(maximum, pool[covered], prices[covered])
    figures["max_90d"] = maximum
    figures["p95_90d"] = _quantile(history, duration, total, 0.95, current)
    with np.errstate(invalid="ignore"):
        squares = np.bincount(pool, weights=duration * (prices - mean[pool]) ** 2, minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(_ratio(squares, total, np.zeros(count)))
        figures["volatility_90d"] = np.where(mean > 0, spread / mean, np.nan)
    with np.errstate(invalid="ignore"):
        near = prices > NEAR_ON_DEMAND_FRACTION * on_demand_usd_per_hour[pool]
        share = _ratio(
            np.bincount(pool, weights=duration * near, minlength=count),
            total,
            (current > NEAR_ON_DEMAND_FRACTION * on_demand_usd_per_hour).astype(float),
        )
    figures["share_near_on_demand"] = np.where(np.isnan(on_demand_usd_per_hour), np.nan, share)
    first_of_pool = np.zeros(times.size, dtype=bool)
    first_of_pool[history.offsets[:-1][history.offsets[:-1] < times.size]] = True
    previous = np.r_[np.nan, prices[:-1]]
    changed = use & ~first_of_pool & (prices != previous) & (times > start_s)
    figures["changes_90d"] = np.bincount(pool, weights=changed, minlength=count).astype(int)
    return figures


# --- loading --------------------------------------------------------------------------------


def _narrow(
    table: Any, regions: Collection[str] | None, instance_types: Collection[str] | None
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if regions:
        conditions.append(table.c.region.in_(list(regions)))
    if instance_types:
        conditions.append(table.c.instance_type.in_(list(instance_types)))
    return conditions


def _spot_frame(
    connection: sa.Connection,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    product_description: str,
) -> pd.DataFrame:
    table = SpotPriceModel.__table__
    query = sa.select(
        table.c.region,
        table.c.zone,
        table.c.availability_zone,
        table.c.availability_zone_id,
        table.c.instance_type,
        table.c.timestamp,
        table.c.price_usd_per_hour,
        table.c.source,
    ).where(
        table.c.product_description == product_description,
        *_narrow(table, regions, instance_types),
    )
    rows = connection.execute(query).all()
    frame = pd.DataFrame(
        rows,
        columns=[
            "region",
            "zone",
            "availability_zone",
            "availability_zone_id",
            "instance_type",
            "timestamp",
            "price",
            "source",
        ],
    )
    if frame.empty:
        frame["time_s"] = pd.Series(dtype=float)
        return frame
    frame["time_s"] = [_aware(row.timestamp).timestamp() for row in rows]
    frame["price"] = frame["price"].astype(float)
    frame = frame.sort_values(["region", "zone", "instance_type", "time_s"], kind="stable")
    return frame.reset_index(drop=True)


def _pools(frame: pd.DataFrame) -> tuple[list[SpotPool], NDArray[np.int64]]:
    if frame.empty:
        return [], np.zeros(1, dtype=np.int64)
    keys = frame[["region", "zone", "instance_type"]]
    starts = np.flatnonzero(
        np.r_[True, (keys.iloc[1:].to_numpy() != keys.iloc[:-1].to_numpy()).any(axis=1)]
    )
    offsets = np.r_[starts, len(frame)].astype(np.int64)
    pools = []
    for index in range(len(starts)):
        # The newest record names the AZ (as oracle.stats does).
        row = frame.iloc[int(offsets[index + 1]) - 1]
        pools.append(
            SpotPool(
                index=index,
                region=str(row["region"]),
                zone=str(row["zone"]),
                availability_zone=row["availability_zone"],
                availability_zone_id=row["availability_zone_id"],
                instance_type=str(row["instance_type"]),
            )
        )
    return pools, offsets


def _on_demand(
    connection: sa.Connection,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    operating_system: str,
) -> dict[tuple[str, str], _Timeline]:
    table = OnDemandPriceModel.__table__
    query = (
        sa.select(table)
        .where(
            table.c.operating_system == operating_system, *_narrow(table, regions, instance_types)
        )
        .order_by(
            table.c.region, table.c.instance_type, table.c.effective_date, table.c.observed_at
        )
    )
    grouped: dict[tuple[str, str], dict[float, _OnDemandPrice]] = {}
    for row in connection.execute(query):
        effective = _aware(row.effective_date)
        # Among rows of one effective date, the newest observation wins (as oracle.stats).
        grouped.setdefault((row.region, row.instance_type), {})[effective.timestamp()] = (
            _OnDemandPrice(float(row.price_usd_per_hour), row.source, effective)
        )
    return {key: _timeline(values) for key, values in grouped.items()}


def _advisor(
    connection: sa.Connection,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    operating_system: str,
) -> dict[tuple[str, str], _Timeline]:
    table = InterruptionFrequencyModel.__table__
    query = (
        sa.select(table)
        .where(
            table.c.operating_system == operating_system, *_narrow(table, regions, instance_types)
        )
        .order_by(table.c.observed_at)
    )
    grouped: dict[tuple[str, str], dict[float, _Advice]] = {}
    for row in connection.execute(query):
        observed = _aware(row.observed_at)
        grouped.setdefault((row.region, row.instance_type), {})[observed.timestamp()] = _Advice(
            int(row.band_index), row.band_label, float(row.savings_pct), row.source, observed
        )
    return {key: _timeline(values) for key, values in grouped.items()}


def _placement_rows(connection: sa.Connection, regions: Collection[str] | None) -> list[Any]:
    table = PlacementScoreModel.__table__
    query = sa.select(table).order_by(table.c.observed_at)
    if regions:
        query = query.where(table.c.region.in_(list(regions)))
    return list(connection.execute(query))


def _placement_timelines(pools: list[SpotPool], rows: list[Any]) -> dict[int, _Timeline]:
    """Per pool, its scores as :func:`oracle.stats.pool_stats` would answer after each moment a
    placement answer arrived that concerns it: the AZ-level answers for its AZ ID, else the
    region-level ones; among answers that asked about the type the narrowest question wins,
    then the newest; the latest answer per (scope, types asked, capacity) counts."""
    pools_by_scope: dict[tuple[str, str, str], list[SpotPool]] = {}
    for pool in pools:
        for scope in (pool.availability_zone_id, "region"):
            if scope is not None:
                key = (pool.region, scope, pool.instance_type)
                pools_by_scope.setdefault(key, []).append(pool)
    # (region, scope, type) -> {(types asked, capacity): latest row}
    latest: dict[tuple[str, str, str], dict[tuple[str, int], Any]] = {}
    moments: dict[float, list[Any]] = {}
    for row in rows:
        moments.setdefault(_aware(row.observed_at).timestamp(), []).append(row)
    series: dict[int, dict[float, _Placement]] = {}
    for moment in sorted(moments):
        touched: set[int] = set()
        for row in moments[moment]:
            for instance_type in row.instance_types.split(","):
                key = (row.region, row.scope, instance_type)
                latest.setdefault(key, {})[(row.instance_types, row.target_capacity)] = row
                touched.update(pool.index for pool in pools_by_scope.get(key, ()))
        for index in sorted(touched):
            placement = _pool_placement(latest, pools[index])
            if placement is not None:
                series.setdefault(index, {})[moment] = placement
    return {index: _timeline(values) for index, values in series.items()}


def _pool_placement(
    latest: Mapping[tuple[str, str, str], Mapping[tuple[str, int], Any]], pool: SpotPool
) -> _Placement | None:
    for scope in (pool.availability_zone_id, "region"):
        if scope is None:
            continue
        best: dict[int, Any] = {}
        for (asked_text, capacity), row in latest.get(
            (pool.region, scope, pool.instance_type), {}
        ).items():
            rank = (-len(asked_text.split(",")), _aware(row.observed_at))
            held = best.get(capacity)
            if held is None or rank > (
                -len(held.instance_types.split(",")),
                _aware(held.observed_at),
            ):
                best[capacity] = row
        if best:
            newest = max(best.values(), key=lambda row: _aware(row.observed_at))
            scores = {capacity: int(row.score) for capacity, row in sorted(best.items())}
            return _Placement(scores, newest.source, _aware(newest.observed_at))
    return None


def _offered_zones(
    connection: sa.Connection,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
) -> dict[tuple[str, str], tuple[str, ...]]:
    table = OfferingModel.__table__
    query = (
        sa.select(table.c.region, table.c.instance_type, table.c.zone)
        .where(*_narrow(table, regions, instance_types))
        .order_by(table.c.region, table.c.instance_type, table.c.zone)
    )
    zones: dict[tuple[str, str], list[str]] = {}
    for row in connection.execute(query):
        zones.setdefault((row.region, row.instance_type), []).append(row.zone)
    return {key: tuple(value) for key, value in zones.items()}


def _instance_specs(connection: sa.Connection) -> dict[str, InstanceSpec]:
    table = InstanceTypeModel.__table__
    return {
        row.instance_type: InstanceSpec(
            instance_type=row.instance_type,
            vcpus=int(row.vcpus),
            accelerator_name=row.accelerator_name,
            accelerator_count=int(row.accelerator_count),
            accelerator_memory_mib_each=int(row.accelerator_memory_mib_each),
        )
        for row in connection.execute(sa.select(table))
    }


# --- helpers ------------------------------------------------------------------------------


def _timeline(values: Mapping[float, Any]) -> _Timeline:
    moments = sorted(values)
    return _Timeline(moments, [values[moment] for moment in moments])


def _running_integral(
    offsets: NDArray[np.int64], times_s: NDArray[np.float64], prices: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Per row, the integral of its pool's price from the pool's first record (USD-hours)."""
    if times_s.size == 0:
        return np.zeros(0)
    segment_h = np.r_[np.diff(times_s), 0.0] / 3600.0
    last_of_pool = offsets[1:] - 1
    segment_h[last_of_pool[last_of_pool >= 0]] = 0.0
    pieces = prices * segment_h
    running = np.r_[0.0, np.cumsum(pieces)[:-1]]
    # Restart the running sum at each pool's first row.
    first_rows = offsets[:-1]
    base = np.repeat(running[first_rows], np.diff(offsets))
    return running - base


def _durations(
    times_s: NDArray[np.float64], segment_end: NDArray[np.float64], start_s: float
) -> NDArray[np.float64]:
    return np.clip(segment_end - np.maximum(times_s, start_s), 0.0, None)


def _ratio(numerator: NDArray[Any], total: NDArray[Any], fallback: NDArray[Any]) -> NDArray[Any]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, numerator / np.where(total > 0, total, 1.0), fallback)


def _quantile(
    history: MarketHistory,
    duration: NDArray[Any],
    total: NDArray[Any],
    quantile: float,
    fallback: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per pool, the smallest price held for at least ``quantile`` of the covered time (the
    rule of oracle.stats, over the history's precomputed price order)."""
    order = history.price_order
    pools = history.pool_of_row[order]
    prices = history.prices_usd_per_hour[order]
    weights = duration[order]
    cumulative = np.cumsum(weights)
    group_start = np.r_[True, pools[1:] != pools[:-1]]
    offset = np.maximum.accumulate(np.where(group_start, cumulative - weights, 0.0))
    within = cumulative - offset
    reached = (within >= quantile * total[pools] * (1 - 1e-12)) & (weights > 0)
    first = np.full(total.size, prices.size, dtype=np.int64)
    np.minimum.at(first, pools[reached], np.flatnonzero(reached))
    found = first < prices.size
    result = fallback.copy()
    result[found] = prices[first[found]]
    return result


def _datetime(seconds: float) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
