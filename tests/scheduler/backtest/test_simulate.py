"""The replay: deterministic, billed as the price path says, no look-ahead, bounded below by
hindsight, interruptions honoured."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from oracle.goodput import GoodputFact
from oracle.models import OnDemandPriceModel, SpotPriceModel
from scheduler.backtest.fleet import Instance
from scheduler.backtest.interruptions import InterruptionModel, rate_path
from scheduler.backtest.market import MarketHistory
from scheduler.backtest.simulate import BacktestOptions, BacktestResult, run_backtest
from scheduler.backtest.spend import account
from scheduler.backtest.world import NOTICE_S
from scheduler.config import POLICY_NAMES
from scheduler.planning.candidates import BAND_MONTHLY_RATE
from tests.scheduler.backtest.conftest import MODEL, SAMPLE_END

Market = tuple[MarketHistory, dict[str, GoodputFact], Engine]
START = SAMPLE_END - timedelta(days=2)


def options(**changes: object) -> BacktestOptions:
    base = BacktestOptions(
        slo_tokens_per_second=2500.0,
        start=START,
        end=SAMPLE_END,
        tick_s=3600.0,
        policies=POLICY_NAMES,
        model=MODEL,
        seed=5,
        planner_interval_s=6 * 3600.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stormy(sample_market: Market) -> BacktestResult:
    """Two days with interruptions 40 times as frequent as the Advisor bands say."""
    history, goodput, _ = sample_market
    return run_backtest(
        history,
        goodput=goodput,
        options=options(interruptions=InterruptionModel(rate_scale=40.0)),
    )


def test_the_same_seed_gives_the_same_replay(sample_market: Market) -> None:
    history, goodput, _ = sample_market
    chosen = options(interruptions=InterruptionModel(rate_scale=40.0), policies=POLICY_NAMES[2:])
    first = run_backtest(history, goodput=goodput, options=chosen)
    second = run_backtest(history, goodput=goodput, options=chosen)
    other = run_backtest(history, goodput=goodput, options=replace(chosen, seed=6))
    assert first.interruption_events > 0
    for name, result in first.policies.items():
        again = second.policies[name]
        assert result.cost_usd == again.cost_usd
        assert result.decisions == again.decisions
        assert result.slo_attainment == again.slo_attainment
        assert result.interruptions == again.interruptions
    assert first.interruption_events != other.interruption_events or any(
        first.policies[name].cost_usd != other.policies[name].cost_usd for name in first.policies
    )


def test_every_policy_cost_reconciles_with_the_price_path(
    sample_market: Market, stormy: BacktestResult
) -> None:
    """An independent integral, from the database's rows, of each instance's lifetime."""
    _, _, engine = sample_market
    spot, on_demand = _price_paths(engine)
    for name, result in stormy.policies.items():
        expected = 0.0
        for instance in result.instances:
            path = _path_of(instance.pool, spot, on_demand)
            expected += _integral(path, instance.launched_s, instance.end_s)
        assert result.instances, name
        assert result.cost_usd == pytest.approx(expected, rel=1e-9), name
        assert result.cumulative_cost_usd[-1] <= result.cost_usd + 1e-9


def test_the_bill_splits_by_phase_and_pool_into_the_cost(
    sample_market: Market, stormy: BacktestResult
) -> None:
    """Start-up (launch to ready), serving, after serving (notice, drain): each phase against
    an independent integral of the database's prices; the phases and the pools sum to the
    bill."""
    _, _, engine = sample_market
    spot, on_demand = _price_paths(engine)
    for name, result in stormy.policies.items():
        expected = dict.fromkeys(result.spend_usd, 0.0)
        for instance in result.instances:
            pool = instance.pool
            path = _path_of(pool, spot, on_demand)
            market = pool.market.replace("-", "_")
            ready = min(instance.ready_s, instance.end_s)
            stop = max(ready, min(instance.stop_serving_s, instance.end_s))
            expected[f"{market}_starting"] += _integral(path, instance.launched_s, ready)
            expected[f"{market}_serving"] += _integral(path, ready, stop)
            expected[f"{market}_after_serving"] += _integral(path, stop, instance.end_s)
        for key, usd in expected.items():
            assert result.spend_usd[key] == pytest.approx(usd, rel=1e-9, abs=1e-9), (name, key)
        assert sum(result.spend_usd.values()) == pytest.approx(result.cost_usd, rel=1e-12)
        assert sum(p.cost_usd for p in result.pools) == pytest.approx(result.cost_usd, rel=1e-9)
        assert sum(p.launches for p in result.pools) == len(result.instances)
        assert sum(p.interruptions for p in result.pools) == result.interruptions
        hours = sum(i.end_s - i.launched_s for i in result.instances) / 3600.0
        assert sum(p.instance_hours for p in result.pools) == pytest.approx(hours)
        assert [p.cost_usd for p in result.pools] == sorted(
            (p.cost_usd for p in result.pools), reverse=True
        )
    planner = stormy.policies["planner"].spend_usd
    assert planner["spot_starting"] > 0 and planner["spot_after_serving"] > 0


def test_a_notice_during_start_up_bills_start_up_only(sample_market: Market) -> None:
    """The cut points of :mod:`scheduler.backtest.spend`: a notice before the instance is
    ready leaves no serving phase; one after it splits the bill in three."""
    history, _, _ = sample_market
    pool = history.pools[0].key
    t0 = START.timestamp()
    early = Instance(0, pool, 100.0, t0, t0 + 600, stop_serving_s=t0 + 300, end_s=t0 + 420,
                     interrupted_s=t0 + 300)  # fmt: skip
    late = Instance(1, pool, 100.0, t0, t0 + 600, stop_serving_s=t0 + 900, end_s=t0 + 1020,
                    interrupted_s=t0 + 900)  # fmt: skip
    spend = account(history, [early])
    assert spend.by_phase["spot_starting"] == history.cost(pool, t0, t0 + 420) > 0
    assert spend.by_phase["spot_serving"] == spend.by_phase["spot_after_serving"] == 0.0
    spend = account(history, [early, late])
    assert spend.by_phase["spot_serving"] == history.cost(pool, t0 + 600, t0 + 900)
    assert spend.by_phase["spot_after_serving"] == history.cost(pool, t0 + 900, t0 + 1020)
    assert spend.total_usd == pytest.approx(
        history.cost(pool, t0, t0 + 420) + history.cost(pool, t0, t0 + 1020), rel=1e-12
    )
    (row,) = spend.by_pool
    assert (row.pool, row.launches, row.interruptions) == (pool, 2, 2)
    assert row.instance_hours == pytest.approx((420 + 1020) / 3600)


def test_hindsight_is_never_above_any_policy(stormy: BacktestResult) -> None:
    assert stormy.hindsight_cost_usd > 0
    for name, result in stormy.policies.items():
        assert stormy.hindsight_cost_usd <= result.cost_usd * (1 + 1e-9), name
    assert sum(result.interruptions for result in stormy.policies.values()) > 0


def test_an_interrupted_instance_serves_nothing_from_its_notice(stormy: BacktestResult) -> None:
    interrupted = 0
    for result in stormy.policies.values():
        for instance in result.instances:
            if instance.interrupted_s is None:
                continue
            interrupted += 1
            gone = instance.interrupted_s + NOTICE_S
            assert instance.end_s <= gone
            assert not instance.serving_at(instance.interrupted_s)
            assert not instance.serving_at(gone)
            assert not instance.serving_at(gone + 3600.0)
    assert interrupted > 0


def test_attainment_and_deficit_follow_capacity(stormy: BacktestResult) -> None:
    slo = stormy.options.slo_tokens_per_second
    span = (stormy.options.end - stormy.options.start).total_seconds()
    for name, result in stormy.policies.items():
        assert 0.0 <= result.slo_attainment <= 1.0
        # Every fleet needs start-up time before it first serves.
        assert result.slo_attainment < 1.0, name
        assert result.deficit_tokens >= slo * 600.0 * (1 - 1e-9)
        assert result.served_tokens + result.deficit_tokens == pytest.approx(slo * span)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cut_hours=st.integers(min_value=1, max_value=30),
    factor=st.sampled_from([0.2, 0.5, 3.0]),
)
def test_prices_after_a_moment_change_no_decision_before_it(
    sample_market: Market, cut_hours: int, factor: float
) -> None:
    history, goodput, _ = sample_market
    cut_s = START.timestamp() + cut_hours * 3600.0 + 1.0
    changed = np.where(
        history.times_s > cut_s, history.prices_usd_per_hour * factor, history.prices_usd_per_hour
    )
    what_if = history.with_spot_prices(changed)
    chosen = options(
        end=START + timedelta(hours=cut_hours + 3),
        tick_s=3600.0,
        planner_interval_s=7200.0,
        interruptions=InterruptionModel(rate_scale=20.0),
    )
    before = run_backtest(history, goodput=goodput, options=chosen)
    after = run_backtest(what_if, goodput=goodput, options=chosen)
    for name, result in before.policies.items():
        early = [d for d in result.decisions if d[0] <= cut_s]
        assert early, name
        assert early == [d for d in after.policies[name].decisions if d[0] <= cut_s], name


# --- helpers ------------------------------------------------------------------------------


def _price_paths(
    engine: Engine,
) -> tuple[
    dict[tuple[str, ...], list[tuple[float, float]]],
    dict[tuple[str, ...], list[tuple[float, float]]],
]:
    spot: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    on_demand: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    with engine.connect() as connection:
        table = SpotPriceModel.__table__
        for row in connection.execute(sa.select(table).order_by(table.c.timestamp)):
            key = (row.region, row.zone, row.instance_type)
            spot.setdefault(key, []).append((_seconds(row.timestamp), row.price_usd_per_hour))
        table = OnDemandPriceModel.__table__
        for row in connection.execute(sa.select(table).order_by(table.c.effective_date)):
            od_key = (row.region, row.instance_type)
            on_demand.setdefault(od_key, []).append(
                (_seconds(row.effective_date), row.price_usd_per_hour)
            )
    return spot, on_demand


def _path_of(
    pool: Any,
    spot: dict[tuple[str, ...], list[tuple[float, float]]],
    on_demand: dict[tuple[str, ...], list[tuple[float, float]]],
) -> list[tuple[float, float]]:
    """The price path (from :func:`_price_paths`) an instance of ``pool`` is billed on."""
    if pool.market == "spot":
        return spot[(pool.region, pool.zone, pool.instance_type)]
    return on_demand[(pool.region, pool.instance_type)]


def _integral(path: list[tuple[float, float]], start: float, end: float) -> float:
    """USD between ``start`` and ``end`` for a step function given as (from, USD/h) pairs."""
    total = 0.0
    for index, (moment, price) in enumerate(path):
        following = path[index + 1][0] if index + 1 < len(path) else math.inf
        overlap = min(following, end) - max(moment, start)
        if overlap > 0:
            total += price * overlap / 3600.0
    return total


def _seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def test_the_planner_policy_keeps_its_hedge(stormy: BacktestResult) -> None:
    """Every fleet the planner asks for still carries the SLO after losing its worst AZ."""
    goodput = {
        pool.instance_type: instance.tokens_per_second
        for result in stormy.policies.values()
        for instance in result.instances
        for pool in [instance.pool]
    }
    slo = stormy.options.slo_tokens_per_second
    decisions = stormy.policies["planner"].decisions
    assert decisions
    for _, target in decisions:
        total = sum(goodput[pool.instance_type] * count for pool, count in target)
        by_zone: dict[str, float] = {}
        for pool, count in target:
            if pool.market == "spot":
                by_zone[pool.zone] = (
                    by_zone.get(pool.zone, 0.0) + goodput[pool.instance_type] * count
                )
        assert total >= slo
        assert total - max(by_zone.values(), default=0.0) >= slo * (1 - 1e-9)


def test_an_interruption_retires_no_survivor(stormy: BacktestResult) -> None:
    """As the service's interruption handler: the replacement is launched and nothing is
    retired at the notice (a fleet left above its plan is trimmed from the next tick on)."""
    planner = stormy.policies["planner"]
    ticks = set(stormy.tick_times_s.tolist())
    notices = {o.at_s for o in planner.observations if o.kind == "interruption"} - ticks
    assert notices
    assert [i.id for i in planner.instances if i.retired_s in notices] == []
    # The planner does retire instances, at ticks.
    assert any(i.retired_s in ticks for i in planner.instances)


def test_the_interruption_rate_rises_as_spot_nears_on_demand(sample_market: Market) -> None:
    history, _, _ = sample_market
    pool = history.pools[0]
    on_demand = history.on_demand_price_at(pool.region, pool.instance_type, START.timestamp())
    assert on_demand is not None
    model = InterruptionModel()
    window = {"start_s": START.timestamp(), "end_s": SAMPLE_END.timestamp(), "model": model}
    cheap = history.with_spot_prices(np.full(history.times_s.size, 0.1 * on_demand))
    dear = history.with_spot_prices(np.full(history.times_s.size, on_demand))
    _, cheap_rates = rate_path(cheap, pool.index, **window)  # type: ignore[arg-type]
    _, dear_rates = rate_path(dear, pool.index, **window)  # type: ignore[arg-type]
    assert np.allclose(dear_rates, cheap_rates * model.at_on_demand_multiplier)
    band = history.band_at(pool.region, pool.instance_type, START.timestamp())
    expected = BAND_MONTHLY_RATE[model.unknown_band_index if band is None else band] / 730.0
    assert cheap_rates[0] == pytest.approx(expected)


def test_the_planner_moves_a_whole_fleet_only_for_a_real_saving(sample_market: Market) -> None:
    history, goodput, _ = sample_market
    calm = options(
        policies=("planner-nohedge",),
        interruptions=InterruptionModel(rate_scale=0.0),
        planner_interval_s=3600.0,
    )
    eager = run_backtest(
        history,
        goodput=goodput,
        options=replace(calm, rebalance_min_saving_pct=0.0, rebalance_min_saving_usd_per_hour=0.0),
    ).policies["planner-nohedge"]
    reluctant = run_backtest(
        history,
        goodput=goodput,
        options=replace(calm, rebalance_min_saving_pct=99.0, rebalance_min_saving_usd_per_hour=1e6),
    ).policies["planner-nohedge"]
    # The first plan is applied; no later one saves 99%, so the fleet never moves after it.
    assert {target for _, target in reluctant.decisions} == {reluctant.decisions[0][1]}
    assert reluctant.launches == sum(count for _, count in reluctant.decisions[0][1])
    assert eager.decisions[0] == reluctant.decisions[0]
    assert eager.launches >= reluctant.launches


def test_ruling_a_move_out_by_the_bound_changes_no_decision(
    sample_market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planner policies keep a fleet without solving when the LP bound cannot save enough;
    the replay is the same as when every replan solves the MILP, and the shortcut does fire."""
    from scheduler.backtest import policies

    history, goodput, _ = sample_market
    chosen = options(
        policies=("planner", "planner-nohedge"),
        interruptions=InterruptionModel(rate_scale=10.0),
        planner_interval_s=3600.0,
        # Thresholds high enough for the bound to rule moves out in these two days.
        rebalance_min_saving_pct=10.0,
        rebalance_min_saving_usd_per_hour=0.1,
    )
    ruled_out: list[bool] = []
    original = policies.PlannerPolicy._cannot_pay

    def counting(self: policies.PlannerPolicy, *args: object) -> bool:
        ruled_out.append(original(self, *args))  # type: ignore[arg-type]
        return ruled_out[-1]

    monkeypatch.setattr(policies.PlannerPolicy, "_cannot_pay", counting)
    fast = run_backtest(history, goodput=goodput, options=chosen)
    monkeypatch.setattr(policies.PlannerPolicy, "_cannot_pay", lambda *args: False)
    full = run_backtest(history, goodput=goodput, options=chosen)
    assert any(ruled_out)
    for name in chosen.policies:
        # A solved replan that keeps the fleet returns it again (recorded, changing nothing);
        # a ruled-out one returns None: compare the fleets the decisions asked for.
        assert _changes(fast.policies[name].decisions) == _changes(full.policies[name].decisions)
        assert fast.policies[name].cost_usd == full.policies[name].cost_usd
        assert fast.policies[name].launches == full.policies[name].launches
        assert fast.policies[name].slo_attainment == full.policies[name].slo_attainment


def _changes(decisions: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
    """The decisions that asked for a fleet other than the one asked for before."""
    changed: list[tuple[float, Any]] = []
    for moment, target in decisions:
        if not changed or changed[-1][1] != target:
            changed.append((moment, target))
    return changed


def test_policies_replayed_side_by_side_in_processes_give_the_same_figures(
    sample_market: Market, stormy: BacktestResult
) -> None:
    """``processes=3``: the planner and planner-nohedge each in a forked process of its own
    (one of them this one), the other policies together; every figure is that of the replay
    in one process, the policies in their order, and the bounds computed once (in the process
    of the quick policies, not the planner's)."""
    history, goodput, _ = sample_market
    split = run_backtest(history, goodput=goodput, options=replace(stormy.options, processes=3))
    assert list(split.policies) == list(stormy.policies) == list(POLICY_NAMES)
    for name, alone in stormy.policies.items():
        side = split.policies[name]
        assert (side.cost_usd, side.slo_attainment, side.launches, side.interruptions) == (
            alone.cost_usd,
            alone.slo_attainment,
            alone.launches,
            alone.interruptions,
        )
        assert side.launch_failures == alone.launch_failures
        assert side.decisions == alone.decisions
        assert np.array_equal(side.capacity_tokens_per_second, alone.capacity_tokens_per_second)
    assert split.hindsight_cost_usd == stormy.hindsight_cost_usd
    assert split.bounds_usd == stormy.bounds_usd
    assert np.array_equal(split.hindsight_cumulative_usd, stormy.hindsight_cumulative_usd)
    assert split.interruption_events == stormy.interruption_events


def test_the_split_gives_each_planner_variant_a_process() -> None:
    from scheduler.backtest.simulate import _groups

    names = POLICY_NAMES
    assert _groups(names, 1) == [tuple(names)]
    assert _groups(names, 2) == [("planner",), tuple(n for n in names if n != "planner")]
    assert _groups(names, 8) == [
        ("planner",),
        ("planner-nohedge",),
        tuple(n for n in names if not n.startswith("planner")),
    ]
    assert _groups(("on-demand", "spot-hedge"), 4) == [("on-demand", "spot-hedge")]
    assert _groups(("planner",), 4) == [("planner",)]
