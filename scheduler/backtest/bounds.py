"""Two more lower bounds beside :mod:`scheduler.backtest.hindsight`, for fair comparisons.

Both walk the tick intervals; in each they use, per pool (spot pool or on-demand offer), the
lowest price it reaches within the interval, and pay nothing for start-up or draining. The
bound is the sum over intervals of (the interval's bound in USD/h x its length).

``hindsight-hedged`` (knows prices): the cheapest fleet that still carries the SLO ``S`` after
losing any one AZ's spot instances (the hedge's loss; a region hedge loses more, so this bounds
it too). Per interval the larger of:

- integer: ``min(f_od(S), min over AZs g of f_g(S) + p_g)``. Proof: take a hedged fleet F. If
  it runs no spot, it is an on-demand cover of ``S``: cost >= ``f_od(S)``, the cheapest such
  cover (an unbounded covering knapsack over types at their lowest on-demand price). Otherwise
  let g be an AZ where it runs spot; F without g's instances still carries ``S`` (the hedge)
  from pools outside g, so it costs at least ``f_g(S)``, the cheapest cover of ``S`` by every
  pool but g's, and g holds at least one spot instance, which costs at least ``p_g``, g's
  lowest spot price. The two parts are disjoint. (``f_g(S) >= f(S)``, the cover from any
  pool, so only the AZs with ``f(S) + p_g`` below the best found need ``f_g``: at 500 tok/s
  this is two instances in two AZs, where ``f(S) + p_min`` allowed one pool twice.)
- fractional: ``S x min(r_od, min over k >= 2 of (r_1 + ... + r_k) / (k - 1))``, with ``r_i``
  the AZs' lowest price per tok/s in increasing order and ``r_od`` on-demand's. Proof: the
  LP ``min sum r_i c_i + r_od o`` s.t. ``sum_{j != i} c_j + o >= S`` for every AZ ``i`` is a
  relaxation. For fixed ``o`` it is the spot problem with ``S - o``; there, with ``T = sum
  c_i``, each ``c_i <= T - S``, so the cheapest spend fills the cheapest AZs to ``T - S``; its
  cost is piecewise linear in ``T`` with breakpoints at ``T = k S / (k - 1)``, giving the
  formula; the total is linear in ``o``, so ``o = 0`` or ``o = S`` is optimal.

``hindsight-region`` (knows prices): the same with a region as the hedge group, the
cheapest fleet that still carries ``S`` after losing any one region's spot instances. Both
proofs above hold for any partition of the spot pools into groups (they use only that the
fleet survives the loss of its largest group), so the formulas are the same with regions in
place of AZs. It bounds the plans that hedge across regions, the fair yardstick for them (a
fleet that survives any region's loss survives any AZ's, so it is never below
``hindsight-hedged``).

``clairvoyant`` (knows prices, capacity and every interruption): the cheapest fleet carrying
the SLO at every instant using only pools that can serve then. An instance serves at ``t`` only
if its pool has capacity at ``t`` (launches fail without capacity; a notice takes a running
instance out of the load balancer at once), so per interval only pools usable at some moment
of it (:meth:`World.usable_during`) and on-demand count. The bound is the larger of the integer
cover and the fractional ``S x`` lowest price per tok/s among them. No policy that carries the
SLO at every instant can cost less: at each instant its serving fleet is such a cover, at
prices no lower than the interval's lowest.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from scheduler.backtest.hindsight import cheapest_cover
from scheduler.backtest.market import MarketHistory
from scheduler.backtest.world import World


def hedged_cost(
    history: MarketHistory,
    *,
    goodput: Mapping[str, float],
    slo_tokens_per_second: float,
    start_s: float,
    end_s: float,
    ticks: NDArray[np.float64],
    excluded: Collection[int] = (),
    group: Literal["zone", "region"] = "zone",
) -> float:
    """The ``hindsight-hedged`` bound in USD (see the module docstring); with ``group =
    "region"``, the ``hindsight-region`` one."""
    columns = _Columns(history, goodput, excluded)
    groups = columns.zone if group == "zone" else columns.region
    total = 0.0
    for left, right, lowest in columns.intervals(start_s, end_s, ticks):
        total += hedged_usd_per_hour(
            lowest, columns.kind, columns.goodput, groups, columns.spot,
            slo_tokens_per_second, len(columns.types),
        ) * (right - left) / 3600.0  # fmt: skip
    return total


def clairvoyant_cost(
    history: MarketHistory,
    world: World,
    *,
    goodput: Mapping[str, float],
    slo_tokens_per_second: float,
    start_s: float,
    end_s: float,
    ticks: NDArray[np.float64],
) -> float:
    """The ``clairvoyant`` bound in USD (see the module docstring)."""
    columns = _Columns(history, goodput, world.excluded)
    edges = np.r_[ticks, end_s] if ticks.size else np.array([start_s, end_s])
    unusable = np.zeros((edges.size - 1, columns.kind.size), dtype=bool)
    for column, pool in enumerate(columns.pool.tolist()):
        intervals = world.down.get(pool) if pool >= 0 else None
        if intervals is None or intervals.starts.size == 0:
            continue
        # Unusable: one down interval covers the whole tick.
        lefts, rights = edges[:-1], edges[1:]
        at = np.searchsorted(intervals.starts, lefts, side="right") - 1
        safe = np.maximum(at, 0)
        unusable[:, column] = (at >= 0) & (intervals.ends[safe] >= rights)
    total = 0.0
    for k, (left, right, lowest) in enumerate(columns.intervals(start_s, end_s, ticks)):
        usable = np.where(unusable[k], np.inf, lowest)
        total += (
            cover_usd_per_hour(
                usable, columns.kind, columns.goodput, slo_tokens_per_second, len(columns.types)
            )
            * (right - left)
            / 3600.0
        )
    return total


def cover_usd_per_hour(
    prices: NDArray[np.float64],
    kind: NDArray[np.int64],
    goodput: NDArray[np.float64],
    need: float,
    types: int,
) -> float:
    """The larger of the integer and fractional cheapest cover of ``need`` tok/s by pools
    (columns) of type ``kind`` at ``prices``."""
    type_price = np.full(types, np.inf)
    np.minimum.at(type_price, kind, prices)
    type_goodput = np.zeros(types)
    type_goodput[kind] = goodput
    present = np.isfinite(type_price)
    if not present.any():
        return math.inf
    integer = _cached_cover(type_price[present], type_goodput[present], need)
    fractional = need * float(np.min(type_price[present] / type_goodput[present]))
    return max(integer, fractional)


def hedged_usd_per_hour(
    prices: NDArray[np.float64],
    kind: NDArray[np.int64],
    goodput: NDArray[np.float64],
    zone: NDArray[np.int64],
    spot: NDArray[np.bool_],
    need: float,
    types: int,
) -> float:
    """The ``hindsight-hedged`` bound at one set of prices (USD/h): columns are pools, with
    their type index ``kind``, goodput, AZ index ``zone`` (spot) and whether they are spot."""
    on_demand = np.where(spot, np.inf, prices)
    od_cover = cover_usd_per_hour(on_demand, kind, goodput, need, types)
    spot_prices = prices[spot]
    finite = np.isfinite(spot_prices)
    if not finite.any():
        return od_cover
    integer = min(od_cover, _hedged_integer(prices, kind, goodput, zone, spot, need, types))
    per_tps = prices / goodput
    zone_rate = np.full(int(zone.max()) + 1 if zone.size else 0, np.inf)
    np.minimum.at(zone_rate, zone[spot], per_tps[spot])
    rates = np.sort(zone_rate[np.isfinite(zone_rate)])
    od_rate = float(np.min(per_tps[~spot])) if (~spot).any() else math.inf
    best = od_rate
    if rates.size >= 2:
        sums = np.cumsum(rates)[1:]
        best = min(best, float(np.min(sums / np.arange(1, rates.size))))
    return max(integer, need * best)


# --- helpers ------------------------------------------------------------------------------


def _hedged_integer(
    prices: NDArray[np.float64],
    kind: NDArray[np.int64],
    goodput: NDArray[np.float64],
    zone: NDArray[np.int64],
    spot: NDArray[np.bool_],
    need: float,
    types: int,
) -> float:
    """``min over groups g of f_g(S) + p_g`` (see the module docstring), trying the groups
    from the lowest ``p_g`` and stopping once ``f(S) + p_g`` (a bound on the rest) reaches the
    best found."""
    cover_all = _integer_cover(prices, kind, goodput, need, types)
    lowest = np.full(int(zone[spot].max()) + 1, np.inf)
    np.minimum.at(lowest, zone[spot], prices[spot])
    best = math.inf
    for group in np.argsort(lowest, kind="stable").tolist():
        p_g = float(lowest[group])
        if not p_g < math.inf or cover_all + p_g >= best:
            break
        outside = np.where(spot & (zone == group), np.inf, prices)
        best = min(best, _integer_cover(outside, kind, goodput, need, types) + p_g)
    return best


def _integer_cover(
    prices: NDArray[np.float64],
    kind: NDArray[np.int64],
    goodput: NDArray[np.float64],
    need: float,
    types: int,
) -> float:
    type_price = np.full(types, np.inf)
    np.minimum.at(type_price, kind, prices)
    type_goodput = np.zeros(types)
    type_goodput[kind] = goodput
    present = np.isfinite(type_price)
    if not present.any():
        return math.inf
    return _cached_cover(type_price[present], type_goodput[present], need)


def _cached_cover(prices: NDArray[np.float64], goodput: NDArray[np.float64], need: float) -> float:
    """:func:`cheapest_cover`, remembered: prices repeat across intervals."""
    key = (prices.tobytes(), goodput.tobytes(), need)
    found = _COVERS.get(key)
    if found is None:
        if len(_COVERS) > 200_000:
            _COVERS.clear()
        found = _COVERS[key] = cheapest_cover(prices, goodput, need)
    return found


_COVERS: dict[tuple[bytes, bytes, float], float] = {}


class _Columns:
    """Every priced pool of the types with goodput: spot pools (not excluded) and on-demand
    offers, with their price changes."""

    def __init__(
        self, history: MarketHistory, goodput: Mapping[str, float], excluded: Collection[int]
    ) -> None:
        self.types = sorted(
            ({p.instance_type for p in history.pools} | {k[1] for k in history.on_demand})
            & set(goodput)
        )
        position = {name: index for index, name in enumerate(self.types)}
        zones: dict[str, int] = {}
        regions: dict[str, int] = {}
        kind: list[int] = []
        rate: list[float] = []
        zone: list[int] = []
        region: list[int] = []
        pool: list[int] = []
        changes: list[tuple[float, int, float]] = []
        skip = set(excluded)
        for spot in history.pools:
            if spot.instance_type not in position or spot.index in skip:
                continue
            column = len(kind)
            kind.append(position[spot.instance_type])
            rate.append(goodput[spot.instance_type])
            zone.append(zones.setdefault(f"{spot.region}/{spot.zone}", len(zones)))
            region.append(regions.setdefault(spot.region, len(regions)))
            pool.append(spot.index)
            times, prices = history.pool_rows(spot.index)
            changes += [
                (t, column, p) for t, p in zip(times.tolist(), prices.tolist(), strict=True)
            ]
        for (_, instance_type), timeline in sorted(history.on_demand.items()):
            if instance_type not in position:
                continue
            column = len(kind)
            kind.append(position[instance_type])
            rate.append(goodput[instance_type])
            zone.append(-1)
            region.append(-1)
            pool.append(-1)
            changes += [
                (t, column, value.price_usd_per_hour)
                for t, value in zip(timeline.times_s, timeline.values, strict=True)
            ]
        changes.sort()
        self.changes = changes
        self.kind = np.asarray(kind, dtype=np.int64)
        self.goodput = np.asarray(rate, dtype=np.float64)
        self.zone = np.asarray(zone, dtype=np.int64)
        self.region = np.asarray(region, dtype=np.int64)
        self.pool = np.asarray(pool, dtype=np.int64)
        self.spot = self.pool >= 0

    def intervals(
        self, start_s: float, end_s: float, ticks: NDArray[np.float64]
    ) -> Iterator[tuple[float, float, NDArray[np.float64]]]:
        """Per tick interval: its ends and each column's lowest price within it (inf before a
        column's first price)."""
        edges = np.r_[ticks, end_s] if ticks.size else np.array([start_s, end_s])
        prices = np.full(self.kind.size, np.inf)
        index = 0
        changes = self.changes
        for k in range(len(edges) - 1):
            left, right = float(edges[k]), float(edges[k + 1])
            while index < len(changes) and changes[index][0] <= left:
                prices[changes[index][1]] = changes[index][2]
                index += 1
            lowest = prices.copy()
            while index < len(changes) and changes[index][0] < right:
                _, column, price = changes[index]
                prices[column] = price
                lowest[column] = min(lowest[column], price)
                index += 1
            yield left, right, lowest
