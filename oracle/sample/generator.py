"""A deterministic generator of a realistic spot market over the sample catalog.

The market is a function of absolute time: every random draw for a pool's changes on UTC day
``d`` is a hash of (seed, pool, d, ...) alone. So any window of any length yields the same
records where windows overlap, and re-ingesting a later window adds only what is new.

Per pool the price is a step function with a few changes a day or fewer, around a level that is
a family's typical spot fraction of on-demand, dispersed per region and per AZ, drifting slowly
(a sine of 15-60 days) with small jitter per change. Now and then it spikes to 85-100% of
on-demand for 1-12 hours. It never exceeds the on-demand price in effect (after the June 2025
P-family cut every affected pool re-prices at midnight of the cut). Like DescribeSpotPriceHistory,
a window also holds the last change before its start, so every pool has a price at every moment.

The family parameters below are modelling choices, not facts, set against public data: the
SkyPilot catalog's per-AZ spot snapshot (spot at 22-47% of on-demand for 80% of its GPU pools,
median 33%; by family g4dn-g6e 33-36%, p3 28%, p4d and p5 29% of their pre-cut prices; AZ-to-AZ
spreads of 4-23% between quartiles), the Spot Instance Advisor feed (GPU savings of 54-87%
between deciles) and the 2021 DescribeSpotPriceHistory dumps (flat g4dn pools with about one
record a day; 2-3.5 records a day for p3dn and p3.16xlarge). Levels are kept to the 25-45%
band (discounts of 55-75%); the P-family levels are fractions of the post-cut price.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy.special import ndtri
from scipy.stats import poisson

from oracle.sample import catalog
from oracle.sample.catalog import SamplePool

DAY_S = 86_400
#: Placement scores are sampled weekly and the Advisor monthly, on an absolute day grid.
PLACEMENT_EVERY_DAYS = 7
ADVISOR_EVERY_DAYS = 30
#: The Spot Instance Advisor's interruption bands: (label, upper bound in %).
ADVISOR_BANDS = (("<5%", 5.0), ("5-10%", 10.0), ("10-15%", 15.0), ("15-20%", 20.0), (">20%", 100.0))
#: How far back the generator looks for the last change before a window's start.
_LOOKBACK_DAYS = 60
#: Spikes reach at least this share of on-demand.
_SPIKE_FLOOR = 0.85
# Streams of the hash-based random draws.
_COUNT, _OFFSET, _JITTER, _CUT, _SPIKE, _SPIKE_BEGIN, _SPIKE_LENGTH = range(7)
_SPIKE_PEAK, _SPIKE_SETTLE, _SHAPE, _SCORE, _BAND = range(7, 12)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ODD = np.uint64(0xD1B54A32D192ED03)


@dataclass(frozen=True)
class FamilyMarket:
    """How a family's spot market behaves (modelling parameters)."""

    #: Typical spot price as a fraction of on-demand (0.30 = a 70% discount).
    spot_fraction: float
    changes_per_day: float
    #: Relative standard deviation of a change around the pool's level.
    jitter: float
    #: Chance a day holds a spike to near on-demand.
    spike_per_day: float
    #: Typical Spot Advisor band (0 "<5%" .. 4 ">20%").
    band: int
    #: 0 (plentiful) .. 1 (scarce): placement scores fall with it and with target capacity.
    scarcity: float


FAMILY_MARKETS: dict[str, FamilyMarket] = {
    "g4dn": FamilyMarket(0.33, 0.6, 0.04, 0.005, 0, 0.10),
    "g5": FamilyMarket(0.35, 1.0, 0.06, 0.010, 1, 0.30),
    "g6": FamilyMarket(0.36, 1.0, 0.06, 0.010, 1, 0.30),
    "g6e": FamilyMarket(0.37, 1.5, 0.08, 0.015, 2, 0.45),
    "gr6": FamilyMarket(0.34, 0.7, 0.05, 0.010, 1, 0.35),
    "p3": FamilyMarket(0.30, 0.8, 0.06, 0.010, 2, 0.40),
    "p3dn": FamilyMarket(0.31, 2.0, 0.08, 0.020, 2, 0.50),
    "p4d": FamilyMarket(0.42, 2.0, 0.10, 0.030, 3, 0.70),
    "p4de": FamilyMarket(0.30, 2.0, 0.10, 0.030, 3, 0.75),
    "p5": FamilyMarket(0.45, 3.0, 0.12, 0.040, 4, 0.85),
    "p5en": FamilyMarket(0.30, 3.0, 0.12, 0.040, 4, 0.85),
    "inf2": FamilyMarket(0.27, 0.5, 0.05, 0.005, 0, 0.20),
    "trn1": FamilyMarket(0.30, 0.7, 0.06, 0.010, 1, 0.40),
    "trn1n": FamilyMarket(0.30, 0.7, 0.06, 0.010, 1, 0.45),
}


@dataclass(frozen=True)
class PoolHistory:
    """A pool's change records: ``times_s`` (epoch seconds, ascending) and prices (USD/h)."""

    pool: SamplePool
    times_s: np.ndarray
    prices_usd_per_hour: np.ndarray


@dataclass(frozen=True)
class PlacementSample:
    observed_at: datetime
    region: str
    #: AZ ID, or None for a region-level score.
    availability_zone_id: str | None
    instance_type: str
    target_capacity: int
    score: int


@dataclass(frozen=True)
class AdvisorSample:
    observed_at: datetime
    region: str
    instance_type: str
    band_index: int
    savings_pct: float


def spot_histories(
    pools: Sequence[SamplePool],
    *,
    seed: int,
    start: datetime,
    end: datetime,
    changes_per_day_scale: float = 1.0,
) -> Iterator[PoolHistory]:
    """Each pool's change records in ``(start, end]`` plus the last one at or before ``start``."""
    start_s, end_s = _epoch(start), _epoch(end)
    for pool in pools:
        yield _pool_history(pool, seed, start_s, end_s, changes_per_day_scale)


def placement_samples(
    pools: Sequence[SamplePool],
    *,
    seed: int,
    start: datetime,
    end: datetime,
    target_capacities: Sequence[int],
) -> Iterator[PlacementSample]:
    """Weekly AZ- and region-level placement scores (1-10) per instance type and capacity,
    from the last snapshot at or before ``start`` to ``end``."""
    by_region_type: dict[tuple[str, str], list[SamplePool]] = {}
    for pool in pools:
        by_region_type.setdefault((pool.region, pool.instance_type), []).append(pool)
    days = np.array(_grid_days(start, end, PLACEMENT_EVERY_DAYS), dtype=np.int64)
    capacities = np.array(target_capacities, dtype=np.int64)
    for (region, instance_type), zone_pools in sorted(by_region_type.items()):
        market = FAMILY_MARKETS[catalog.family(instance_type)]
        scores = np.stack([_az_scores(pool, market, seed, days, capacities) for pool in zone_pools])
        # A region-level request may spread over every AZ, so it scores at least as well as
        # the best AZ.
        region_scores = np.minimum(10, scores.max(axis=0) + (1 if len(zone_pools) > 1 else 0))
        for day_index, day in enumerate(days.tolist()):
            observed_at = _day_start(day)
            for capacity_index, capacity in enumerate(target_capacities):
                for pool_index, pool in enumerate(zone_pools):
                    yield PlacementSample(
                        observed_at,
                        region,
                        pool.availability_zone_id,
                        instance_type,
                        capacity,
                        int(scores[pool_index, day_index, capacity_index]),
                    )
                yield PlacementSample(
                    observed_at,
                    region,
                    None,
                    instance_type,
                    capacity,
                    int(region_scores[day_index, capacity_index]),
                )


def advisor_samples(
    pools: Sequence[SamplePool], *, seed: int, start: datetime, end: datetime
) -> Iterator[AdvisorSample]:
    """Monthly Spot Advisor entries (band and savings) per region and instance type, from the
    last snapshot at or before ``start`` to ``end``."""
    zones: dict[tuple[str, str], list[SamplePool]] = {}
    for pool in pools:
        zones.setdefault((pool.region, pool.instance_type), []).append(pool)
    days = np.array(_grid_days(start, end, ADVISOR_EVERY_DAYS), dtype=np.int64)
    for (region, instance_type), zone_pools in sorted(zones.items()):
        market = FAMILY_MARKETS[catalog.family(instance_type)]
        # Savings follow the region's typical spot level against on-demand.
        levels = [_pool_shape(pool, seed, market)[0] for pool in zone_pools]
        savings = float(round(100.0 * (1.0 - float(np.mean(levels)))))
        key = f"advisor/{region}/{instance_type}"
        lasting = market.band + int(3 * float(_uniform(seed, key, 0, 0, _BAND))) - 1
        draws = _uniform(seed, key, days, 0, _BAND)
        # One month in five the band moves by one, up or down.
        bands = lasting + np.where(draws < 0.1, -1, 0) + np.where(draws >= 0.9, 1, 0)
        for day, band in zip(days.tolist(), np.clip(bands, 0, 4).tolist(), strict=True):
            yield AdvisorSample(_day_start(day), region, instance_type, int(band), savings)


def _pool_history(
    pool: SamplePool, seed: int, start_s: int, end_s: int, scale: float
) -> PoolHistory:
    first_day = start_s // DAY_S - _LOOKBACK_DAYS
    times, prices = _changes(pool, seed, np.arange(first_day, end_s // DAY_S + 1), scale)
    before = np.flatnonzero(times <= start_s)
    inside = (times > start_s) & (times <= end_s)
    if before.size:
        opening_time, opening_price = int(times[before[-1]]), float(prices[before[-1]])
    else:
        # Practically unreachable (no change in 60 days): open the window at the pool's level.
        market = FAMILY_MARKETS[catalog.family(pool.instance_type)]
        level = _pool_shape(pool, seed, market)[0]
        opening_at = _epoch_to_datetime(start_s)
        on_demand = catalog.on_demand_price(pool.instance_type, pool.region, opening_at)
        opening_time, opening_price = start_s, _floor4(level * on_demand)
    return PoolHistory(
        pool,
        np.concatenate(([opening_time], times[inside])).astype(np.int64),
        np.concatenate(([opening_price], prices[inside])),
    )


def _changes(
    pool: SamplePool, seed: int, days: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """A pool's change records on the UTC days ``days`` (epoch seconds, USD/h), ascending.

    Every random draw is a hash of (seed, pool, day, slot, stream), so a day's changes do not
    depend on which window asked for them.
    """
    market = FAMILY_MARKETS[catalog.family(pool.instance_type)]
    level, amplitude, period_days, phase = _pool_shape(pool, seed, market)
    key = _pool_key(pool)
    rate = market.changes_per_day * scale
    counts = poisson.ppf(_uniform(seed, key, days, 0, _COUNT), rate).astype(np.int64)
    slots = np.arange(max(int(counts.max(initial=0)), 1))
    grid_days, grid_slots = np.meshgrid(days, slots, indexing="ij")
    used = grid_slots < counts[:, None]
    offsets = np.floor(_uniform(seed, key, grid_days, grid_slots, _OFFSET) * DAY_S).astype(np.int64)
    moments = (grid_days * DAY_S + offsets)[used]
    jitter = _normal(seed, key, grid_days, grid_slots, _JITTER)[used] * market.jitter
    fractions = level * np.exp(jitter)
    cut = catalog.PRICE_CUTS.get(catalog.family(pool.instance_type))
    if cut is not None and days[0] * DAY_S <= _epoch(cut.effective) <= days[-1] * DAY_S:
        # Every affected pool re-prices when the on-demand cut takes effect.
        cut_s = _epoch(cut.effective)
        moments = np.append(moments, cut_s)
        fractions = np.append(fractions, level * np.exp(_normal(seed, key, cut_s, 0, _CUT)))
    moments, fractions = _with_spikes(seed, key, days, market, level, moments, fractions)
    moments, first = np.unique(moments, return_index=True)
    fractions = fractions[first]
    drift = 1.0 + amplitude * np.sin(2 * math.pi * (moments / DAY_S) / period_days + phase)
    spiking = fractions >= _SPIKE_FLOOR
    fractions = np.where(spiking, fractions, fractions * drift)
    on_demand = _on_demand_at(pool, moments)
    prices = np.floor(np.minimum(fractions, 1.0) * on_demand * 10_000) / 10_000
    return moments, np.maximum(prices, 0.0001)


def _with_spikes(
    seed: int,
    key: str,
    days: np.ndarray,
    market: FamilyMarket,
    level: float,
    moments: np.ndarray,
    fractions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Spikes to 85-100% of on-demand for 1-12 hours (ending within their day), each followed
    by a return near the pool's level; changes inside a spike are dropped."""
    spike_days = days[_uniform(seed, key, days, 0, _SPIKE) < market.spike_per_day]
    if spike_days.size == 0:
        return moments, fractions
    begin = spike_days * DAY_S + np.floor(
        _uniform(seed, key, spike_days, 0, _SPIKE_BEGIN) * (DAY_S - 3600)
    ).astype(np.int64)
    length = 3600 + np.floor(_uniform(seed, key, spike_days, 0, _SPIKE_LENGTH) * 11 * 3600)
    finish = np.minimum(begin + length.astype(np.int64), spike_days * DAY_S + DAY_S - 1)
    peak = _SPIKE_FLOOR + _uniform(seed, key, spike_days, 0, _SPIKE_PEAK) * (1 - _SPIKE_FLOOR)
    settle = level * np.exp(0.05 * _normal(seed, key, spike_days, 0, _SPIKE_SETTLE))
    record_day = moments // DAY_S
    index = np.searchsorted(spike_days, record_day)
    index = np.minimum(index, spike_days.size - 1)
    hit = spike_days[index] == record_day
    inside = hit & (moments >= begin[index]) & (moments <= finish[index])
    moments = np.concatenate((moments[~inside], begin, finish))
    fractions = np.concatenate((fractions[~inside], peak, settle))
    order = np.argsort(moments, kind="stable")
    return moments[order], fractions[order]


def _pool_shape(
    pool: SamplePool, seed: int, market: FamilyMarket
) -> tuple[float, float, float, float]:
    """A pool's lasting traits: its level (fraction of on-demand, with region and AZ
    dispersion), and its drift's amplitude, period in days and phase."""
    key = _pool_key(pool)
    region_key = f"region/{pool.region}/{pool.instance_type}"
    dispersion = 0.06 * float(_normal(seed, region_key, 0, 0, _SHAPE)) + 0.10 * float(
        _normal(seed, key, 0, 0, _SHAPE)
    )
    level = min(max(market.spot_fraction * math.exp(dispersion), 0.15), 0.70)
    amplitude = 0.02 + 0.06 * float(_uniform(seed, key, 0, 1, _SHAPE))
    period_days = 15.0 + 45.0 * float(_uniform(seed, key, 0, 2, _SHAPE))
    phase = 2 * math.pi * float(_uniform(seed, key, 0, 3, _SHAPE))
    return level, amplitude, period_days, phase


def _az_scores(
    pool: SamplePool, market: FamilyMarket, seed: int, days: np.ndarray, capacities: np.ndarray
) -> np.ndarray:
    """A pool's placement scores (1-10) by day and target capacity: lower for scarce families
    and large capacities, with a lasting per-AZ offset and weekly noise."""
    key = _pool_key(pool)
    grid_days, grid_capacities = np.meshgrid(days, capacities, indexing="ij")
    raw = (
        10.0
        - 6.0 * market.scarcity
        - (0.3 + 0.6 * market.scarcity) * np.log2(grid_capacities)
        + _normal(seed, key, 0, 0, _SCORE)
        + 0.7 * _normal(seed, key, grid_days, grid_capacities, _SCORE)
    )
    scores: np.ndarray = np.clip(np.round(raw), 1, 10).astype(np.int64)
    return scores


def _on_demand_at(pool: SamplePool, moments: np.ndarray) -> np.ndarray:
    timeline = catalog.on_demand_timeline(pool.instance_type, pool.region)
    prices = np.full(moments.shape, timeline[0][1], dtype=float)
    for effective, price in timeline[1:]:
        prices[moments >= _epoch(effective)] = price
    return prices


def _grid_days(start: datetime, end: datetime, every_days: int) -> list[int]:
    """Absolute day numbers on the grid, from the last one at or before ``start`` to ``end``."""
    first = (_epoch(start) // DAY_S) // every_days * every_days
    last = _epoch(end) // DAY_S
    return list(range(first, last + 1, every_days))


def _pool_key(pool: SamplePool) -> str:
    return f"{pool.region}/{pool.availability_zone_id}/{pool.instance_type}"


def _uniform(seed: int, key: str, day: Any, slot: Any, stream: int) -> np.ndarray:
    """Uniform numbers in [0, 1): a splitmix64 hash of (seed, key, day, slot, stream).

    zlib.crc32, not hash(), names the key: str hashes are salted per process, and the market
    must not be.
    """
    with np.errstate(over="ignore"):
        state = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(zlib.crc32(key.encode())))
        state = _mix(state ^ (np.asarray(day, dtype=np.int64).astype(np.uint64) * _GOLDEN))
        state = _mix(state ^ (np.asarray(slot, dtype=np.int64).astype(np.uint64) * _ODD))
        state = _mix(state + np.uint64(stream))
    uniform: np.ndarray = (state >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return uniform


def _normal(seed: int, key: str, day: Any, slot: Any, stream: int) -> np.ndarray:
    # Clip away 0 so the inverse CDF stays finite.
    return np.asarray(ndtri(np.clip(_uniform(seed, key, day, slot, stream), 1e-12, 1 - 1e-12)))


def _mix(state: Any) -> Any:
    state = state ^ (state >> np.uint64(30))
    state = state * np.uint64(0xBF58476D1CE4E5B9)
    state = state ^ (state >> np.uint64(27))
    state = state * np.uint64(0x94D049BB133111EB)
    return state ^ (state >> np.uint64(31))


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _epoch_to_datetime(seconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(seconds))


def _day_start(day: int) -> datetime:
    return _epoch_to_datetime(day * DAY_S)


def _floor4(value: float) -> float:
    return math.floor(value * 10_000) / 10_000
