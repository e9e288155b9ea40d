"""Spot interruptions of the simulated world: a seeded random process per pool.

Each spot pool gets a non-homogeneous Poisson process of interruption notices. Its rate is the
Spot Instance Advisor band's monthly rate (the planner's midpoints:
:data:`scheduler.planning.candidates.BAND_MONTHLY_RATE`) per hour, times a factor that rises
linearly from 1 where the spot price is at ``near_on_demand_fraction`` of on-demand to
``at_on_demand_multiplier`` where it reaches on-demand: AWS reclaims capacity when it is short,
which is also when the price climbs. A notice reclaims every instance of the pool running at
that moment (capacity is reclaimed per pool), two minutes later.

This is the ``advisor`` world. The same band-and-price factor scales the ``calibrated``
world's intensity (:func:`intensity_path`).

The world is not a policy: it may use the whole history (the band in force, else the earliest
one known; the price in force). The events are sampled once, before any policy runs, from a
generator seeded by (seed, pool), so every policy faces the same events, and a pool's events do
not depend on which other pools are loaded.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from scheduler.backtest.market import MarketHistory
from scheduler.planning.candidates import BAND_MONTHLY_RATE, HOURS_PER_MONTH


@dataclass(frozen=True)
class InterruptionModel:
    #: Multiplies every rate (0 turns interruptions off).
    rate_scale: float = 1.0
    #: Share of on-demand above which the rate starts to rise.
    near_on_demand_fraction: float = 0.8
    #: The rate's multiple when the spot price reaches on-demand.
    at_on_demand_multiplier: float = 10.0
    #: Band assumed for a pool with no Advisor entry (2: "10-15%").
    unknown_band_index: int = 2
    #: Availability traces per pool, keyed "AZ/instance type" (AZ name or AZ ID).
    traces: Mapping[str, Path] = field(default_factory=dict)


def sample_interruptions(
    history: MarketHistory,
    *,
    seed: int,
    start_s: float,
    end_s: float,
    model: InterruptionModel,
) -> dict[int, NDArray[np.float64]]:
    """Notice times (epoch seconds, sorted) per pool index within ``[start_s, end_s)``; pools
    without events are left out."""
    events: dict[int, NDArray[np.float64]] = {}
    if end_s <= start_s:
        return events
    for pool in history.pools:
        if model.rate_scale <= 0:
            continue
        moments, rates = rate_path(history, pool.index, start_s=start_s, end_s=end_s, model=model)
        key = f"{pool.region}/{pool.zone}/{pool.instance_type}".encode()
        rng = np.random.default_rng([seed, zlib.crc32(key)])
        times = _poisson_times(rng, moments, rates, end_s)
        if times.size:
            events[pool.index] = times
    return events


def rate_path(
    history: MarketHistory, pool: int, *, start_s: float, end_s: float, model: InterruptionModel
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The pool's interruption rate (per hour) as a step function: ``rates[i]`` holds from
    ``moments[i]`` to ``moments[i + 1]`` (the last to ``end_s``)."""
    spot = history.pools[pool]
    times, _prices = history.pool_rows(pool)
    advisor = history.advisor.get((spot.region, spot.instance_type))
    on_demand = history.on_demand.get((spot.region, spot.instance_type))
    breaks = [start_s]
    breaks += times[(times > start_s) & (times < end_s)].tolist()
    for timeline in (advisor, on_demand):
        if timeline is not None:
            breaks += [t for t in timeline.times_s if start_s < t < end_s]
    moments = np.unique(np.asarray(breaks, dtype=np.float64))
    rates = np.empty(moments.size)
    for index, moment in enumerate(moments.tolist()):
        rates[index] = _rate(history, pool, moment, model)
    return moments, rates


def intensity_path(
    history: MarketHistory, pool: int, *, start_s: float, end_s: float, model: InterruptionModel
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`rate_path` as a monthly rate before ``rate_scale`` (the band's midpoint times
    the factor of the price's closeness to on-demand)."""
    moments, rates = rate_path(
        history, pool, start_s=start_s, end_s=end_s, model=replace(model, rate_scale=1.0)
    )
    return moments, rates * HOURS_PER_MONTH


def _rate(history: MarketHistory, pool: int, t_s: float, model: InterruptionModel) -> float:
    spot = history.pools[pool]
    band = history.band_at(spot.region, spot.instance_type, t_s)
    band = model.unknown_band_index if band is None else min(max(band, 0), 4)
    base = BAND_MONTHLY_RATE[band] / HOURS_PER_MONTH * model.rate_scale
    price = history.spot_price_at(pool, t_s)
    on_demand = history.on_demand_price_at(spot.region, spot.instance_type, t_s)
    if price is None or not on_demand:
        return base
    near = model.near_on_demand_fraction
    closeness = min(max((price / on_demand - near) / max(1.0 - near, 1e-9), 0.0), 1.0)
    return base * (1.0 + (model.at_on_demand_multiplier - 1.0) * closeness)


def _poisson_times(
    rng: np.random.Generator,
    moments: NDArray[np.float64],
    rates_per_hour: NDArray[np.float64],
    end_s: float,
) -> NDArray[np.float64]:
    """Event times of a Poisson process with a piecewise constant rate, by inverting its
    cumulative hazard at unit-exponential arrivals."""
    lengths_h = np.diff(np.r_[moments, end_s]) / 3600.0
    hazard = np.cumsum(rates_per_hour * lengths_h)
    total = float(hazard[-1]) if hazard.size else 0.0
    arrivals: list[float] = []
    level = 0.0
    while True:
        level += float(rng.exponential())
        if level >= total:
            break
        arrivals.append(level)
    if not arrivals:
        return np.zeros(0)
    levels = np.asarray(arrivals)
    piece = np.searchsorted(hazard, levels, side="right")
    before = np.r_[0.0, hazard][piece]
    with np.errstate(divide="ignore"):
        offset_h = (levels - before) / rates_per_hour[piece]
    times_s: NDArray[np.float64] = moments[piece] + offset_h * 3600.0
    return times_s
