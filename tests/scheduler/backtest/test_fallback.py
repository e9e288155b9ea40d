"""When spot runs dry everywhere, the planner's replans are spent within one moment and the
executor's last resort, the on-demand cover, restores the fleet one start-up later; without it
the fleet waits for a later decision. Once spot is back, the fleet returns to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from oracle.goodput import GoodputFact
from scheduler.backtest import simulate
from scheduler.backtest.market import MarketHistory
from scheduler.backtest.simulate import BacktestOptions, BacktestResult, run_backtest
from scheduler.backtest.world import DownIntervals, World, from_down_intervals
from tests.scheduler.backtest.conftest import MODEL, SAMPLE_END

Market = tuple[MarketHistory, dict[str, GoodputFact], object]
SLO = 500.0
START = SAMPLE_END - timedelta(days=1)
#: Every spot pool loses its capacity for six hours, half an hour before a tick.
DRY_FROM_S = START.timestamp() + 12.5 * 3600.0
DRY_TO_S = DRY_FROM_S + 6 * 3600.0


def _dry_world(history: MarketHistory, *, start_s: float, end_s: float, **_: object) -> World:
    down = {
        index: DownIntervals(np.array([DRY_FROM_S]), np.array([DRY_TO_S]))
        for index, pool in enumerate(history.pools)
        if pool.key.market == "spot"
    }
    return from_down_intervals("dry", down, start_s=start_s, end_s=end_s, parameters={})


def _replay(market: Market, monkeypatch: pytest.MonkeyPatch, fallback: bool) -> BacktestResult:
    history, goodput, _ = market
    monkeypatch.setattr(simulate, "draw_world", _dry_world)
    options = BacktestOptions(
        slo_tokens_per_second=SLO,
        start=START,
        end=SAMPLE_END,
        tick_s=3600.0,
        policies=("planner",),
        model=MODEL,
        planner_interval_s=6 * 3600.0,
        on_demand_fallback=fallback,
    )
    return run_backtest(history, goodput=goodput, options=options)


def _restored_s(result: BacktestResult) -> float:
    """Seconds from the loss of spot to the fleet carrying the SLO again."""
    instances = result.policies["planner"].instances
    for t_s in np.arange(DRY_FROM_S, DRY_TO_S, 15.0):
        if sum(i.tokens_per_second for i in instances if i.serving_at(float(t_s))) >= SLO:
            return float(t_s) - DRY_FROM_S
    return DRY_TO_S - DRY_FROM_S


def test_the_on_demand_cover_restores_the_fleet_one_start_up_after_spot_runs_dry(
    sample_market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    covered = _replay(sample_market, monkeypatch, fallback=True)
    waiting = _replay(sample_market, monkeypatch, fallback=False)
    planner = covered.policies["planner"]
    at_loss = [target for moment, target in planner.decisions if moment == DRY_FROM_S]
    # Every pool's notice is an event of its own, each with its replans; the last decision at
    # that moment is the cover, all on demand, as large as the plan whose launches failed.
    assert len(at_loss) >= simulate.MAX_REPLANS + 2
    assert all(pool.market == "on-demand" for pool, _ in at_loss[-1])
    assert sum(count for _, count in at_loss[-1]) == sum(count for _, count in at_loss[-2])
    assert any(pool.market == "spot" for pool, _ in at_loss[-2])
    # Each failed spot pool is covered by its region's cheapest on-demand type serving at least
    # as much (the sample market's on-demand list prices at that moment).
    history, goodput, _ = sample_market
    view = history.as_of(datetime.fromtimestamp(DRY_FROM_S, UTC))
    prices = {(o.region, o.instance_type): o.price_usd_per_hour for o in view.on_demand_offers}
    rates = {name: fact.goodput_tokens_per_second for name, fact in goodput.items()}
    covers = {(pool.region, pool.instance_type) for pool, _ in at_loss[-1]}
    for pool, _ in at_loss[-2]:
        need = rates[pool.instance_type]
        serving = [(price, name) for (region, name), price in prices.items()
                   if region == pool.region and rates.get(name, 0.0) >= need]  # fmt: skip
        assert (pool.region, min(serving)[1]) in covers, pool
    assert _restored_s(covered) == pytest.approx(covered.options.startup_s, abs=15.0)
    # Without the cover the fleet stays short past the next tick.
    assert _restored_s(waiting) > 1800.0
    assert planner.slo_attainment > waiting.policies["planner"].slo_attainment
    # The cover is no resting place: the spot plan stays the one to reach, so the first tick
    # after spot returns moves the fleet back (make-before-break: on demand until it serves).
    back_s = DRY_TO_S + 3600.0
    serving = [i for i in planner.instances if i.serving_at(back_s)]
    assert serving and all(i.pool.market == "spot" for i in serving)
    assert sum(i.tokens_per_second for i in serving) >= SLO
