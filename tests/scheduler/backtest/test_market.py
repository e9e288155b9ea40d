"""The in-memory market: views equal to what the oracle answers, billing integrals."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle import db
from oracle.models import SpotPriceModel
from oracle.stats import on_demand_offers, pool_stats
from scheduler.backtest.market import MarketHistory
from tests.scheduler.backtest.conftest import SAMPLE_DAYS, SAMPLE_END, fill_sample


def test_views_answer_as_the_oracle_does(engine: Engine) -> None:
    fill_sample(engine)
    history = MarketHistory.load(engine)
    start = SAMPLE_END - timedelta(days=SAMPLE_DAYS)
    moments = [
        start - timedelta(days=3),  # before the history: nothing known yet
        start + timedelta(hours=7, minutes=13),
        SAMPLE_END - timedelta(days=2, seconds=1),
        SAMPLE_END,
    ]
    with db.session_factory(engine)() as session:
        for moment in moments:
            view = history.as_of(moment)
            expected = pool_stats(session, as_of=moment)
            assert bool(expected) == (moment >= start), moment
            assert view.pool_stats == expected
            assert view.on_demand_offers == on_demand_offers(session, as_of=moment)
            # What the planner reads: the last week only (the longer figures None).
            week = pool_stats(session, as_of=moment, history_days=7)
            assert view.pool_stats_of(None, history_days=7) == week
            assert all(stats.mean_price_usd_per_hour_90d is None for stats in week)


def test_narrowed_stats_are_the_same_objects_for_those_types(engine: Engine) -> None:
    fill_sample(engine)
    history = MarketHistory.load(engine)
    moment = SAMPLE_END - timedelta(days=1, minutes=5)
    with db.session_factory(engine)() as session:
        expected = pool_stats(session, as_of=moment, instance_types=["g6.xlarge"])
    assert history.as_of(moment).pool_stats_of({"g6.xlarge"}) == expected


def test_spot_cost_is_the_integral_of_the_step_function(
    sample_market: tuple[MarketHistory, object, Engine],
) -> None:
    history, _, engine = sample_market
    pool = history.pools[3]
    with engine.connect() as connection:
        table = SpotPriceModel.__table__
        rows = connection.execute(
            sa.select(table.c.timestamp, table.c.price_usd_per_hour)
            .where(
                table.c.region == pool.region,
                table.c.zone == pool.zone,
                table.c.instance_type == pool.instance_type,
            )
            .order_by(table.c.timestamp)
        ).all()
    times = [row.timestamp.replace(tzinfo=SAMPLE_END.tzinfo).timestamp() for row in rows]
    start, end = times[2] + 1234.5, times[-3] - 17.0
    expected = 0.0
    for index, (moment, row) in enumerate(zip(times, rows, strict=True)):
        following = times[index + 1] if index + 1 < len(times) else np.inf
        overlap = min(following, end) - max(moment, start)
        if overlap > 0:
            expected += row.price_usd_per_hour * overlap / 3600.0
    assert history.spot_cost(pool.index, start, end) == pytest.approx(expected, rel=1e-12)
    assert history.spot_price_at(pool.index, times[0] - 1) is None


def test_a_view_hides_later_prices(sample_market: tuple[MarketHistory, object, Engine]) -> None:
    history, _, _ = sample_market
    moment = SAMPLE_END - timedelta(days=5)
    view = history.as_of(moment)
    for pool in history.pools:
        times, prices = history.pool_rows(pool.index)
        known = times <= moment.timestamp()
        current = view.spot_prices_usd_per_hour[pool.index]
        if known.any():
            assert current == prices[known][-1]
        else:
            assert np.isnan(current)
