"""The figures of :func:`oracle.stats.step_statistics` over a whole in-memory history at once.

Rows after the moment, rows of pools not selected and rows wholly before a window weigh zero;
adding zeros leaves every sum as the oracle's sliced computation makes it, and the price order
for the quantile is computed once per history instead of sorted per moment. A test holds the
figures equal to :func:`oracle.stats.pool_stats`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from oracle.stats import (
    NEAR_ON_DEMAND_FRACTION,
    WINDOW_DAYS,
    ratio,
    weighted_quantile,
    window_durations,
)

if TYPE_CHECKING:
    from scheduler.backtest.market import MarketHistory

_WINDOW_S = max(WINDOW_DAYS) * 86_400.0

FIGURES = (
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
    history_days: int = max(WINDOW_DAYS),
) -> dict[str, NDArray[Any]]:
    """The figures of :func:`oracle.stats.step_statistics` for the ``selected`` pools (indexed
    by pool; others NaN), over the whole history's arrays at once.

    Rows after ``as_of_s``, rows of pools not selected and rows wholly before a window weigh
    zero, and adding zeros leaves every sum as the sliced computation makes it; the price
    order for the quantile is computed once per history instead of sorted per moment. A test
    holds these figures equal to :func:`oracle.stats.pool_stats`, also with ``history_days``
    below 90 (see :func:`short_window_statistics`).
    """
    if history_days < max(WINDOW_DAYS):
        return short_window_statistics(
            history, as_of_s=as_of_s, selected=selected, history_days=history_days
        )
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
        duration, total = window_durations(
            pool, times, segment_end, as_of_s - days * 86_400.0, count
        )
        integral = np.bincount(pool, weights=duration * prices, minlength=count)
        figures[f"mean_{days}d"] = ratio(integral, total, current)
    start_s = as_of_s - _WINDOW_S
    duration, total = window_durations(pool, times, segment_end, start_s, count)
    mean = figures[f"mean_{max(WINDOW_DAYS)}d"]
    covered = duration > 0
    maximum = current.copy()
    np.fmax.at(maximum, pool[covered], prices[covered])
    figures["max_90d"] = maximum
    # The price order is the history's, computed once rather than sorted per moment.
    order = history.price_order
    figures["p95_90d"] = weighted_quantile(
        pool[order], prices[order], duration[order], total, 0.95, current
    )
    with np.errstate(invalid="ignore"):
        squares = np.bincount(pool, weights=duration * (prices - mean[pool]) ** 2, minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(ratio(squares, total, np.zeros(count)))
        figures["volatility_90d"] = np.where(mean > 0, spread / mean, np.nan)
    with np.errstate(invalid="ignore"):
        near = prices > NEAR_ON_DEMAND_FRACTION * on_demand_usd_per_hour[pool]
        share = ratio(
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


def short_window_statistics(
    history: MarketHistory, *, as_of_s: float, selected: NDArray[np.bool_], history_days: int
) -> dict[str, NDArray[Any]]:
    """The figures of ``pool_stats(..., history_days=history_days)``: the current price and the
    means over windows up to ``history_days``, the rest NaN, from each selected pool's rows of
    those days only (its last change at or before their start, then every later one up to
    ``as_of_s``), gathered in the oracle's order so that every sum is the oracle's."""
    times, prices = history.times_s, history.prices_usd_per_hour
    count = len(history.pools)
    first_row = history.offsets[:-1]
    ends = history.rows_through(as_of_s)
    live = selected & (ends - 1 >= first_row)
    opening = np.maximum(history.rows_through(as_of_s - history_days * 86_400.0) - 1, first_row)
    lengths = np.where(live, ends - opening, 0)
    starts = np.cumsum(lengths) - lengths
    rows = np.arange(int(lengths.sum())) - np.repeat(starts - opening, lengths)
    pool = history.pool_of_row[rows]
    time_s, price = times[rows], prices[rows]
    last = np.r_[pool[1:] != pool[:-1], True] if rows.size else np.zeros(0, dtype=bool)
    segment_end = np.where(last, as_of_s, np.r_[time_s[1:], as_of_s])
    current = np.full(count, np.nan)
    current[pool[last]] = price[last]
    nothing = np.full(count, np.nan)
    figures: dict[str, NDArray[Any]] = {name: nothing for name in FIGURES}
    figures["current"] = current
    for days in WINDOW_DAYS:
        if days <= history_days:
            duration, total = window_durations(
                pool, time_s, segment_end, as_of_s - days * 86_400.0, count
            )
            integral = np.bincount(pool, weights=duration * price, minlength=count)
            figures[f"mean_{days}d"] = ratio(integral, total, current)
    figures["changes_90d"] = nothing
    return figures
