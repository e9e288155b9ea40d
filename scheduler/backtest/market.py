"""The oracle's history in memory, loaded once, and views of it as known at a moment.

:meth:`MarketHistory.load` reads every spot price change, on-demand price, Spot Advisor entry,
placement score, offering and instance spec in a handful of queries
(:mod:`scheduler.backtest.load`). Per spot pool the price
step function is a pair of numpy arrays (change times in epoch seconds, prices) inside one
concatenated array with per-pool offsets, and a running integral of price over time, so that
the cost of any interval is two lookups.

:meth:`MarketHistory.as_of` gives a :class:`MarketView`: the facts observed at or before a
moment and nothing later (no look-ahead), with the same :class:`~oracle.stats.PoolStats` and
:class:`~oracle.stats.OnDemandOffer` objects that :mod:`oracle.stats` computes from the
database, and under the same rules of when a fact counts as observed. Its statistics come
from the oracle's one kernel, :func:`oracle.stats.statistics_as_of`, fed the rows the oracle's
query would read (:meth:`MarketHistory.rows_as_of`), without a query.

The world's truth (prices in force, what an instance-hour cost) is also here, for billing:
:meth:`MarketHistory.spot_cost` and :meth:`MarketHistory.on_demand_cost`. Only the simulator
calls those; policies see views.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TypeVar, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from oracle.stats import WINDOW_DAYS, OnDemandOffer, PoolStats, statistics_as_of
from scheduler.backtest.facts import SpotPool
from scheduler.backtest.load import LoadedHistory, read_history
from scheduler.planning.model import PoolKey

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
T = TypeVar("T")


@dataclass
class MarketHistory(LoadedHistory):
    """Everything the oracle holds about a set of pools, as arrays and timelines."""

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

    def rows_as_of(
        self, as_of_s: float, selected: NDArray[np.bool_], history_days: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The rows :func:`oracle.stats.pool_stats` reads at ``as_of_s`` for the ``selected``
        pools with a price: each one's last change at or before ``history_days`` before, then
        every later one up to ``as_of_s``, in pool and time order. Returns the rows and the pool
        of each."""
        first_row = self.offsets[:-1]
        ends = self.rows_through(as_of_s)
        live = selected & (ends - 1 >= first_row)
        opening = np.maximum(self.rows_through(as_of_s - history_days * 86_400.0) - 1, first_row)
        lengths = np.where(live, ends - opening, 0)
        starts = np.cumsum(lengths) - lengths
        rows = np.arange(int(lengths.sum())) - np.repeat(starts - opening, lengths)
        return rows.astype(np.int64), self.pool_of_row[rows]

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
        loaded = read_history(
            engine,
            regions=regions,
            instance_types=instance_types,
            product_description=product_description,
            operating_system=operating_system,
        )
        return cls(**{each.name: getattr(loaded, each.name) for each in fields(LoadedHistory)})

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

    def observed_at(self, row: int) -> datetime:
        """When the price row ``row`` was observed (remembered: every view of the pool's
        current price asks for it)."""
        found = self._observed_at.get(row)
        if found is None:
            found = self._observed_at[row] = _datetime(float(self.times_s[row]))
        return found

    @cached_property
    def _observed_at(self) -> dict[int, datetime]:
        return {}

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
        return replace(self, prices_usd_per_hour=np.asarray(prices_usd_per_hour, dtype=np.float64))

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
            return float(self.prices_usd_per_hour[first] * (t_s - self.times_s[first]) / 3600.0)
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

    def pool_stats_of(
        self, instance_types: Collection[str] | None, *, history_days: int = max(WINDOW_DAYS)
    ) -> list[PoolStats]:
        """:attr:`pool_stats`, narrowed to ``instance_types`` (``None``: all), over the last
        ``history_days`` as :func:`oracle.stats.pool_stats` reads them; cached per set."""
        key = (None if instance_types is None else frozenset(instance_types), history_days)
        cached = self._stats_cache.get(key)
        if cached is None:
            cached = self._compute_stats(key[0], history_days)
            self._stats_cache[key] = cached
        return cached

    @cached_property
    def _stats_cache(self) -> dict[tuple[frozenset[str] | None, int], list[PoolStats]]:
        return {}

    def memo(self, key: Hashable, make: Callable[[], T]) -> T:
        """What ``make`` derives from this view, computed once per ``key``: the policies that
        decide at one moment share it (the planner's two variants price the same pools)."""
        if key not in self._memo:
            self._memo[key] = make()
        return cast(T, self._memo[key])

    @cached_property
    def _memo(self) -> dict[Hashable, object]:
        return {}

    def _compute_stats(
        self, instance_types: frozenset[str] | None, history_days: int
    ) -> list[PoolStats]:
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
        table_rows, pool_of = history.rows_as_of(self.as_of_s, selected, history_days)
        # The kernel numbers the pools 0..n-1 in order: ``known`` is that order.
        compact = np.searchsorted(known, pool_of)
        figures = statistics_as_of(
            compact,
            history.times_s[table_rows],
            history.prices_usd_per_hour[table_rows],
            as_of_s=self.as_of_s,
            on_demand_usd_per_hour=on_demand[known],
            history_days=history_days,
        )
        columns = {
            name: [None if value != value else value for value in figures[name].tolist()]
            for name in _FIGURES
        }
        changes = [
            None if value != value else int(value) for value in figures["changes_90d"].tolist()
        ]
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
        changes: list[int | None],
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
            changes_90d=changes[number],
            price_source=self.history.price_sources[row],
            price_observed_at=self.history.observed_at(row),
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


# --- helpers ------------------------------------------------------------------------------


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
    integral: NDArray[np.float64] = running - base
    return integral


def _datetime(seconds: float) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)
