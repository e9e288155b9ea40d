"""The hindsight bound: a lower bound on what any fleet carrying the SLO can cost.

It knows every price in advance and pays nothing for interruptions or start-up. Over each tick
interval it takes the larger of two lower bounds, both valid at every instant of the interval:

- integer: the cheapest fleet of whole instances whose goodput reaches the SLO, at the lowest
  price each instance type reaches anywhere (any pool, spot or on-demand) within the interval
  (an unbounded covering knapsack over the instance types, solved exactly by branch and bound);
- fractional: ``SLO x min over pools of price / goodput``, integrated exactly over the price
  steps (fractional instances; tight when instances are small against the SLO).

Every policy that keeps a fleet carrying the SLO billed at every instant (the simulated fleet
launches replacements at the notice and retires make-before-break) costs at least this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from scheduler.backtest.market import MarketHistory

#: Tolerance on goodput sums (tok/s): float rounding must not ask for one more instance.
_TOLERANCE = 1e-9


def hindsight_cost(
    history: MarketHistory,
    *,
    goodput: Mapping[str, float],
    slo_tokens_per_second: float,
    start_s: float,
    end_s: float,
    ticks: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64]]:
    """The bound in USD over ``[start_s, end_s]`` with ``ticks`` (ascending, the first at
    ``start_s``) as the intervals' starts, and its cumulative value at each tick."""
    types = sorted({p.instance_type for p in history.pools} | {k[1] for k in history.on_demand})
    types = [name for name in types if name in goodput]
    type_goodput = np.array([goodput[name] for name in types], dtype=np.float64)
    changes, columns_of_type = _changes(history, types)
    prices = np.full(sum(len(c) for c in columns_of_type), np.inf)
    type_min = np.full(len(types), np.inf)
    edges = np.r_[ticks, end_s] if ticks.size else np.array([start_s, end_s])
    bounds = np.zeros(len(edges) - 1)
    solver = _CoverSolver(type_goodput, slo_tokens_per_second)
    index = 0
    for k in range(len(edges) - 1):
        left, right = float(edges[k]), float(edges[k + 1])
        while index < len(changes) and changes[index][0] <= left:
            index = _apply(changes, index, prices, type_min, columns_of_type)
        lowest = type_min.copy()
        fractional = 0.0
        moment = left
        while index < len(changes) and changes[index][0] < right:
            if changes[index][0] > moment:
                held_s = changes[index][0] - moment
                fractional += _fractional_rate(type_min, type_goodput) * held_s
            moment = changes[index][0]
            index = _apply(changes, index, prices, type_min, columns_of_type)
            np.minimum(lowest, type_min, out=lowest)
        fractional += _fractional_rate(type_min, type_goodput) * (right - moment)
        fractional *= slo_tokens_per_second / 3600.0
        integer = solver.cost_usd_per_hour(lowest) * (right - left) / 3600.0
        bounds[k] = max(fractional, integer)
    cumulative = np.r_[0.0, np.cumsum(bounds)]
    return float(cumulative[-1]), cumulative[: len(ticks)]


def cheapest_cover(
    prices_usd_per_hour: NDArray[np.float64],
    goodput_tokens_per_second: NDArray[np.float64],
    need_tokens_per_second: float,
) -> float:
    """The least USD/h of whole instances (any count of each type) whose goodput reaches
    ``need``; ``inf`` when no type has a price."""
    return _CoverSolver(goodput_tokens_per_second, need_tokens_per_second).cost_usd_per_hour(
        prices_usd_per_hour
    )


# --- helpers ------------------------------------------------------------------------------


class _CoverSolver:
    """Branch and bound over types sorted by price per tok/s, with the fractional bound; the
    answers are cached per price vector (prices repeat across intervals)."""

    def __init__(self, goodput: NDArray[np.float64], need: float) -> None:
        self.goodput = goodput
        self.need = need
        self.cache: dict[bytes, float] = {}

    def cost_usd_per_hour(self, prices: NDArray[np.float64]) -> float:
        key = prices.tobytes()
        cached = self.cache.get(key)
        if cached is None:
            cached = self._solve(prices)
            self.cache[key] = cached
        return cached

    def _solve(self, prices: NDArray[np.float64]) -> float:
        items = _undominated(
            [
                (float(p), float(g))
                for p, g in zip(prices, self.goodput, strict=True)
                if p < math.inf
            ]
        )
        if not items:
            return math.inf
        items.sort(key=lambda item: (item[0] / item[1], item[0]))
        best = min(_count(self.need, g) * p for p, g in items)

        def search(position: int, remaining: float, cost: float) -> None:
            nonlocal best
            if position == len(items):
                return
            price, rate = items[position]
            if cost + remaining * price / rate >= best * (1 - 1e-12):
                return
            for count in range(_count(remaining, rate), -1, -1):
                spent = cost + count * price
                left = remaining - count * rate
                if left <= _TOLERANCE:
                    best = min(best, spent)
                else:
                    search(position + 1, left, spent)

        search(0, self.need, 0.0)
        return best


def _undominated(items: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop a type when another costs no more and serves no less."""
    kept = []
    for price, rate in items:
        dominated = (
            any((p <= price and g >= rate) and (p, g) != (price, rate) for p, g in items)
            or (price, rate) in kept
        )
        if not dominated:
            kept.append((price, rate))
    return kept


def _count(need: float, rate: float) -> int:
    return max(0, math.ceil(need / rate - _TOLERANCE))


def _changes(
    history: MarketHistory, types: list[str]
) -> tuple[list[tuple[float, int, int, float]], list[NDArray[np.int64]]]:
    """Every price change of every priced column (spot pool or on-demand offer) of ``types``:
    (moment, column, type index, USD/h), sorted; and the columns of each type."""
    position = {name: index for index, name in enumerate(types)}
    changes: list[tuple[float, int, int, float]] = []
    columns: list[list[int]] = [[] for _ in types]
    column = 0
    for pool in history.pools:
        kind = position.get(pool.instance_type)
        if kind is None:
            continue
        times, prices = history.pool_rows(pool.index)
        changes += [
            (moment, column, kind, price)
            for moment, price in zip(times.tolist(), prices.tolist(), strict=True)
        ]
        columns[kind].append(column)
        column += 1
    for (_, instance_type), timeline in sorted(history.on_demand.items()):
        kind = position.get(instance_type)
        if kind is None:
            continue
        changes += [
            (moment, column, kind, value.price_usd_per_hour)
            for moment, value in zip(timeline.times_s, timeline.values, strict=True)
        ]
        columns[kind].append(column)
        column += 1
    changes.sort()
    return changes, [np.asarray(c, dtype=np.int64) for c in columns]


def _apply(
    changes: list[tuple[float, int, int, float]],
    index: int,
    prices: NDArray[np.float64],
    type_min: NDArray[np.float64],
    columns_of_type: list[NDArray[np.int64]],
) -> int:
    """Apply every change at ``changes[index]``'s moment; return the next index."""
    moment = changes[index][0]
    touched = set()
    while index < len(changes) and changes[index][0] == moment:
        _, column, kind, price = changes[index]
        prices[column] = price
        touched.add(kind)
        index += 1
    for kind in touched:
        type_min[kind] = prices[columns_of_type[kind]].min()
    return index


def _fractional_rate(type_min: NDArray[np.float64], goodput: NDArray[np.float64]) -> float:
    """USD/h per tok/s of the cheapest type now (``inf`` while nothing is priced)."""
    return float(np.min(type_min / goodput)) if type_min.size else math.inf
