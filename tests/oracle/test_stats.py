"""Pool statistics: time-weighted figures of the step function, as known at a moment."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from oracle import db
from oracle.importers import import_files
from oracle.models import (
    InterruptionFrequencyModel,
    OfferingModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    SpotPriceModel,
)
from oracle.stats import on_demand_offers, pool_stats, step_statistics
from oracle.store import insert_ignore

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
MINUTE = 60.0
DAY = 86_400.0


# --- the pure computation against a brute-force integral ------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    """One pool's change records on a minute grid, from 100 days before as_of to as_of."""
    as_of_minute = int(AS_OF.timestamp() // MINUTE)
    minutes = draw(
        st.lists(
            st.integers(as_of_minute - 100 * 1440, as_of_minute),
            min_size=1,
            max_size=40,
            unique=True,
        )
    )
    prices = draw(
        st.lists(
            st.sampled_from([0.5, 1.0, 1.25, 2.0, 3.5, 7.9, 9.0]),
            min_size=len(minutes),
            max_size=len(minutes),
        )
    )
    on_demand = draw(st.sampled_from([4.0, 8.0, 10.0]))
    times = np.array(sorted(minutes), dtype=float) * MINUTE
    return times, np.array(prices, dtype=float), on_demand


def brute_force(
    times: np.ndarray, prices: np.ndarray, on_demand: float, days: int
) -> dict[str, Any]:
    """Sample the step function at every minute of the window: exact on a minute grid."""
    as_of_s = AS_OF.timestamp()
    grid = np.arange(as_of_s - days * DAY, as_of_s, MINUTE)
    index = np.searchsorted(times, grid, side="right") - 1
    held = grid[index >= 0]
    samples = prices[index[index >= 0]]
    if held.size == 0:
        return {"mean": prices[-1], "covered": 0}
    ordered = np.sort(samples)
    mean = samples.mean()
    return {
        "mean": mean,
        "covered": held.size,
        "p95": ordered[math.ceil(0.95 * ordered.size) - 1],
        # The price in force at as_of counts, even one that took effect at that very moment.
        "max": max(ordered[-1], prices[-1]),
        "volatility": samples.std() / mean,
        "share": float(np.mean(samples > 0.8 * on_demand)),
    }


@settings(max_examples=150, deadline=None)
@given(histories())
# A price that takes effect exactly at as_of covers no time but is the current price.
@example((np.array([AS_OF.timestamp() - 2 * DAY, AS_OF.timestamp()]), np.array([0.5, 1.0]), 4.0))
def test_time_weighted_figures_equal_a_brute_force_integral(
    history: tuple[np.ndarray, np.ndarray, float],
) -> None:
    times, prices, on_demand = history
    figures = step_statistics(
        np.zeros(times.size, dtype=np.int64),
        times,
        prices,
        as_of_s=AS_OF.timestamp(),
        on_demand_usd_per_hour=np.array([on_demand]),
    )
    assert figures["current"][0] == prices[-1]
    for days in (7, 30, 90):
        expected = brute_force(times, prices, on_demand, days)
        assert figures[f"mean_{days}d"][0] == pytest.approx(expected["mean"], rel=1e-9)
    expected = brute_force(times, prices, on_demand, 90)
    if expected["covered"]:
        assert figures["p95_90d"][0] == expected["p95"]
        assert figures["max_90d"][0] == expected["max"]
        assert figures["volatility_90d"][0] == pytest.approx(expected["volatility"], abs=1e-9)
        assert figures["share_near_on_demand"][0] == pytest.approx(expected["share"], abs=1e-12)
    inside = times > AS_OF.timestamp() - 90 * DAY
    changes = int(np.sum(inside[1:] & (prices[1:] != prices[:-1])))
    assert figures["changes_90d"][0] == changes


@settings(max_examples=50, deadline=None)
@given(st.lists(histories(), min_size=2, max_size=5))
def test_pools_are_computed_independently(
    many: list[tuple[np.ndarray, np.ndarray, float]],
) -> None:
    pool = np.concatenate([np.full(times.size, i) for i, (times, _, _) in enumerate(many)])
    figures = step_statistics(
        pool,
        np.concatenate([times for times, _, _ in many]),
        np.concatenate([prices for _, prices, _ in many]),
        as_of_s=AS_OF.timestamp(),
        on_demand_usd_per_hour=np.array([od for _, _, od in many]),
    )
    for i, (times, prices, on_demand) in enumerate(many):
        alone = step_statistics(
            np.zeros(times.size, dtype=np.int64),
            times,
            prices,
            as_of_s=AS_OF.timestamp(),
            on_demand_usd_per_hour=np.array([on_demand]),
        )
        for name, values in alone.items():
            assert figures[name][i] == pytest.approx(values[0], rel=1e-12, nan_ok=True), name


# --- through the database, on SQLite and PostgreSQL -----------------------------------------


def _spot_row(zone: str, moment: datetime, price: float, *, source: str = "file") -> dict[str, Any]:
    return {
        "source": source,
        "observed_at": moment,
        "region": "us-east-1",
        "zone": zone,
        "availability_zone": None,
        "availability_zone_id": zone,
        "instance_type": "g5.xlarge",
        "product_description": "Linux/UNIX",
        "timestamp": moment,
        "price_usd_per_hour": price,
    }


def _random_history(rng: np.random.Generator, zone: str) -> list[dict[str, Any]]:
    offsets = np.sort(rng.choice(np.arange(-100 * 1440, 1), size=60, replace=False))
    prices = rng.choice([0.30, 0.35, 0.42, 0.51, 0.9], size=offsets.size)
    return [
        _spot_row(zone, AS_OF + timedelta(minutes=int(offset)), float(price))
        for offset, price in zip(offsets, prices, strict=True)
    ]


def _context_rows(observed: datetime, score: int, band: int, od: float) -> dict[type, list[Any]]:
    return {
        OnDemandPriceModel: [
            {
                "source": "file",
                "observed_at": observed,
                "region": "us-east-1",
                "instance_type": "g5.xlarge",
                "operating_system": "Linux",
                "effective_date": observed,
                "price_usd_per_hour": od,
            }
        ],
        PlacementScoreModel: [
            {
                "source": "aws",
                "observed_at": observed,
                "region": "us-east-1",
                "scope": scope,
                "availability_zone_id": None if scope == "region" else scope,
                "instance_types": types,
                "target_capacity": capacity,
                "score": score + shift,
            }
            for scope, types, shift in (
                ("use1-az1", "g5.xlarge", 0),
                ("use1-az1", "g5.2xlarge,g5.xlarge,g6.xlarge", -1),
                ("region", "g5.xlarge", 1),
            )
            for capacity in (1, 4)
        ],
        InterruptionFrequencyModel: [
            {
                "source": "file",
                "observed_at": observed,
                "region": "us-east-1",
                "instance_type": "g5.xlarge",
                "operating_system": "Linux",
                "band_index": band,
                "band_label": ["<5%", "5-10%", "10-15%", "15-20%", ">20%"][band],
                "band_max_pct": [5, 10, 15, 20, 100][band],
                "savings_pct": 60.0,
            }
        ],
    }


def _insert(engine: sa.Engine, tables: dict[type, list[Any]]) -> None:
    with db.transaction(engine) as session:
        for model, rows in tables.items():
            insert_ignore(session, model, rows)


def test_pool_stats_match_the_computation_and_ignore_later_facts(engine: sa.Engine) -> None:
    rng = np.random.default_rng(7)
    rows = _random_history(rng, "use1-az1") + _random_history(rng, "use1-az2")
    _insert(engine, {SpotPriceModel: rows})
    _insert(engine, _context_rows(AS_OF - timedelta(days=3), score=8, band=1, od=1.006))
    with db.transaction(engine) as session:
        before = pool_stats(session, as_of=AS_OF)

    assert [(p.zone, p.instance_type) for p in before] == [
        ("use1-az1", "g5.xlarge"),
        ("use1-az2", "g5.xlarge"),
    ]
    for stats in before:
        mine = sorted((r for r in rows if r["zone"] == stats.zone), key=lambda r: r["timestamp"])
        times = np.array([r["timestamp"].timestamp() for r in mine])
        prices = np.array([r["price_usd_per_hour"] for r in mine])
        for days, value in (
            (7, stats.mean_price_usd_per_hour_7d),
            (30, stats.mean_price_usd_per_hour_30d),
            (90, stats.mean_price_usd_per_hour_90d),
        ):
            assert value == pytest.approx(brute_force(times, prices, 1.006, days)["mean"], rel=1e-9)
        assert stats.current_price_usd_per_hour == prices[-1]
        assert stats.price_observed_at == mine[-1]["timestamp"]
        assert stats.on_demand_price_usd_per_hour == 1.006
        assert stats.interruption_band_label == "5-10%"
        assert stats.price_source == "file"
    az1, az2 = before
    # The single-type question wins over the three-type one; az2 has only the region's answer.
    assert az1.placement_scores == {1: 8, 4: 8}
    assert az2.placement_scores == {1: 9, 4: 9}

    # Facts from after as_of: new prices, a new on-demand price, scores and an Advisor band.
    later = [
        _spot_row(zone, AS_OF + timedelta(hours=h), 99.0)
        for zone in ("use1-az1", "use1-az3")
        for h in (1, 30)
    ]
    _insert(engine, {SpotPriceModel: later})
    _insert(engine, _context_rows(AS_OF + timedelta(seconds=1), score=2, band=4, od=5.0))
    with db.transaction(engine) as session:
        after = pool_stats(session, as_of=AS_OF)
        moved = pool_stats(session, as_of=AS_OF + timedelta(days=2))
    assert after == before
    assert moved[0].current_price_usd_per_hour == 99.0
    assert moved[0].placement_scores == {1: 2, 4: 2}
    assert moved[0].interruption_band_index == 4
    assert len(moved) == 3


def test_narrowing_and_empty_results(engine: sa.Engine) -> None:
    _insert(engine, {SpotPriceModel: _random_history(np.random.default_rng(1), "use1-az1")})
    with db.transaction(engine) as session:
        assert pool_stats(session, as_of=AS_OF, regions=["eu-west-1"]) == []
        assert pool_stats(session, as_of=AS_OF, instance_types=["p5.48xlarge"]) == []
        assert pool_stats(session, as_of=AS_OF - timedelta(days=400)) == []
        assert len(pool_stats(session, as_of=AS_OF, instance_types=["g5.xlarge"])) == 1
        only = pool_stats(session, as_of=AS_OF)[0]
    assert only.on_demand_price_usd_per_hour is None
    assert only.share_above_80pct_on_demand_90d is None
    assert only.placement_scores == {}
    assert only.interruption_band_index is None


def test_reading_fewer_days_keeps_the_short_figures_and_blanks_the_rest(
    engine: sa.Engine,
) -> None:
    """history_days=7 (what the planner reads): the current price, its source and time and the
    7-day mean are those of the full read; the figures over longer windows are None."""
    rng = np.random.default_rng(7)
    rows = _random_history(rng, "use1-az1") + _random_history(rng, "use1-az2")
    # Changes inside the last week too, so that the 7-day mean is not just the current price.
    rows += [_spot_row("use1-az1", AS_OF - timedelta(hours=h), 0.3 + h / 1000) for h in (5, 50)]
    _insert(engine, {SpotPriceModel: rows})
    with db.transaction(engine) as session:
        full = pool_stats(session, as_of=AS_OF)
        week = pool_stats(session, as_of=AS_OF, history_days=7)
        month = pool_stats(session, as_of=AS_OF, history_days=30)
        with pytest.raises(ValueError, match="history_days"):
            pool_stats(session, as_of=AS_OF, history_days=14)
    assert [s.zone for s in week] == [s.zone for s in full] == ["use1-az1", "use1-az2"]
    for whole, short, medium in zip(full, week, month, strict=True):
        assert short.current_price_usd_per_hour == whole.current_price_usd_per_hour
        assert short.price_observed_at == whole.price_observed_at
        assert short.mean_price_usd_per_hour_7d == pytest.approx(whole.mean_price_usd_per_hour_7d)
        assert medium.mean_price_usd_per_hour_30d == pytest.approx(
            whole.mean_price_usd_per_hour_30d
        )
        assert (
            short.mean_price_usd_per_hour_30d is None and medium.mean_price_usd_per_hour_90d is None
        )
        assert short.p95_price_usd_per_hour_90d is None and short.changes_90d is None
        assert whole.changes_90d is not None and whole.p95_price_usd_per_hour_90d is not None


def test_on_demand_offers_follow_effective_dates(engine: sa.Engine) -> None:
    cut = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [
        {
            "source": "file",
            "observed_at": moment,
            "region": "us-east-1",
            "instance_type": "p5.48xlarge",
            "operating_system": "Linux",
            "effective_date": moment,
            "price_usd_per_hour": price,
        }
        for moment, price in ((cut - timedelta(days=200), 98.32), (cut, 55.04))
    ]
    offering = {
        "source": "file",
        "observed_at": cut,
        "region": "us-east-1",
        "zone": "use1-az6",
        "availability_zone": None,
        "availability_zone_id": "use1-az6",
        "instance_type": "p5.48xlarge",
    }
    _insert(engine, {OnDemandPriceModel: rows, OfferingModel: [offering]})
    with db.transaction(engine) as session:
        before = on_demand_offers(session, as_of=cut - timedelta(seconds=1))
        after = on_demand_offers(session, as_of=cut)
        none = on_demand_offers(session, as_of=cut - timedelta(days=365))
        windows = on_demand_offers(session, as_of=cut, operating_system="Windows")
    assert [o.price_usd_per_hour for o in before] == [98.32]
    assert [(o.price_usd_per_hour, o.zones, o.observed_at) for o in after] == [
        (55.04, ("use1-az6",), cut)
    ]
    assert none == [] and windows == []


# --- a figure checked by hand on real data --------------------------------------------------

HISTORY_2021 = "lucianamarques-spot-history/us-east-1_2021-03-02_2021-05-31_gpu.csv"


def _hand_mean(path: Path, zone: str, instance_type: str, start: datetime, end: datetime) -> float:
    """The time-weighted mean over [start, end] by explicit interval arithmetic."""
    records = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if (
                row["availability_zone"] == zone
                and row["instance_type"] == instance_type
                and row["product_description"] == "Linux/UNIX"
            ):
                records.append((datetime.fromisoformat(row["timestamp"]), float(row["spot_price"])))
    records.sort()
    total_seconds = 0.0
    dollar_seconds = 0.0
    for i, (moment, price) in enumerate(records):
        until = records[i + 1][0] if i + 1 < len(records) else end
        begin, finish = max(moment, start), min(until, end)
        if finish > begin:
            seconds = (finish - begin).total_seconds()
            total_seconds += seconds
            dollar_seconds += seconds * price
    return dollar_seconds / total_seconds


def test_mean_of_a_real_2021_p3dn_pool_checked_by_hand(
    engine: sa.Engine, shared_data: Path
) -> None:
    path = shared_data / HISTORY_2021
    import_files(engine, [path])
    as_of = datetime(2021, 5, 30, 12, tzinfo=UTC)
    with db.transaction(engine) as session:
        pools = pool_stats(
            session, as_of=as_of, regions=["us-east-1"], instance_types=["p3dn.24xlarge"]
        )
        zones = {
            s.availability_zone for s in pool_stats(session, as_of=as_of, regions=["us-east-1"])
        }
    assert {p.availability_zone for p in pools} == {"us-east-1a", "us-east-1b"}
    (stats,) = [p for p in pools if p.availability_zone == "us-east-1a"]
    assert {"us-east-1a", "us-east-1b", "us-east-1c"} <= zones
    for days, value in (
        (7, stats.mean_price_usd_per_hour_7d),
        (30, stats.mean_price_usd_per_hour_30d),
        (90, stats.mean_price_usd_per_hour_90d),
    ):
        expected = _hand_mean(
            path, "us-east-1a", "p3dn.24xlarge", as_of - timedelta(days=days), as_of
        )
        assert value == pytest.approx(expected, rel=1e-9)
    # The pool moved in 2021: its mean is not simply its current price.
    assert stats.mean_price_usd_per_hour_30d != stats.current_price_usd_per_hour
    assert stats.changes_90d > 50
