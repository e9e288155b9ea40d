"""The planner on tiny hand-made markets: prices, caps, filters, hedge, baselines, warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from oracle.capacity import UnavailablePool
from oracle.importers import import_files
from oracle.quotas import VcpuQuota
from oracle.reference import ensure_goodput_figures
from oracle.risk import advisor_prior
from scheduler.config import PlannerConfig, QuotaConfig, QuotasConfig
from scheduler.planner import (
    InfeasiblePlanError,
    Plan,
    PoolKey,
    RunningInstance,
    make_plan,
    plan_from_data,
)
from scheduler.planning.candidates import build_candidates, placement_cap, spot_price_estimate
from tests.scheduler.planning_data import AS_OF, data, offer, spot, two_zone_market

CONFIG = PlannerConfig()


def _plan(config: PlannerConfig = CONFIG, slo: float = 1000.0, **kwargs: object) -> Plan:
    return plan_from_data(
        kwargs.pop("market", two_zone_market()),  # type: ignore[arg-type]
        config=config,
        slo_tokens_per_second=slo,
        **kwargs,  # type: ignore[arg-type]
    )


def _knock_out(plan: Plan, zone: str) -> float:
    return sum(
        a.count * a.tokens_per_second_each
        for a in plan.allocations
        if not (a.pool.market == "spot" and a.pool.zone == zone)
    )


def test_plan_meets_the_slo_and_survives_losing_either_zone() -> None:
    plan = _plan()
    assert plan.tokens_per_second >= 1000
    for zone in ("use1-az1", "use1-az2"):
        assert _knock_out(plan, zone) >= 1000
    assert plan.tokens_per_second_after_worst_loss >= 1000
    assert plan.cost_usd_per_hour == pytest.approx(
        sum(a.count * a.expected_cost_usd_per_hour_each for a in plan.allocations)
    )
    assert plan.usd_per_million_tokens == pytest.approx(
        plan.cost_usd_per_hour / (1000 * 3600) * 1e6
    )


def test_plan_beats_the_baselines_and_reports_savings() -> None:
    plan = _plan()
    on_demand = plan.baselines["all_on_demand"]
    assert on_demand.cost_usd_per_hour is not None
    assert on_demand.cost_usd_per_hour > plan.cost_usd_per_hour
    assert on_demand.saving_usd_per_hour == pytest.approx(
        on_demand.cost_usd_per_hour - plan.cost_usd_per_hour
    )
    assert all(a.pool.market == "on-demand" for a in on_demand.allocations)
    single = plan.baselines["cheapest_single_spot_pool"]
    # One pool, no hedge: cheaper than the hedged plan, but it would not survive a zone loss.
    assert single.cost_usd_per_hour is not None
    assert single.cost_usd_per_hour <= plan.cost_usd_per_hour
    assert len(single.allocations) == 1
    one_type = plan.baselines["cheapest_single_instance_type"]
    assert one_type.cost_usd_per_hour is not None
    assert one_type.cost_usd_per_hour >= plan.cost_usd_per_hour - 1e-9
    assert len({a.pool.instance_type for a in one_type.allocations}) == 1


def test_hedge_none_concentrates_and_region_hedge_needs_another_region() -> None:
    unhedged = _plan(PlannerConfig(hedge="none"))
    assert unhedged.cost_usd_per_hour <= _plan().cost_usd_per_hour
    regional = _plan(PlannerConfig(hedge="region"))
    # Every spot pool is in us-east-1: losing the region's spot leaves on-demand only.
    spot_share = sum(
        a.count * a.tokens_per_second_each for a in regional.allocations if a.pool.market == "spot"
    )
    assert regional.tokens_per_second - spot_share >= 1000


def test_headroom_and_pool_share() -> None:
    roomy = _plan(PlannerConfig(headroom_fraction=0.5))
    assert roomy.required_tokens_per_second == 1500
    assert roomy.tokens_per_second >= 1500
    spread = _plan(PlannerConfig(max_pool_share=0.3))
    for allocation in spread.allocations:
        share = allocation.count * allocation.tokens_per_second_each / spread.tokens_per_second
        assert share <= 0.3 + 1e-9
    assert len(spread.allocations) >= 4


def test_spot_estimate_is_the_larger_of_current_and_mean_and_never_above_on_demand() -> None:
    pool = spot("use1-az1", "g5.xlarge", 0.40, mean_7d=0.55)
    assert spot_price_estimate(pool, "max-current-mean-7d") == 0.55
    assert spot_price_estimate(pool, "current") == 0.40
    assert spot_price_estimate(pool, "mean-7d") == 0.55
    expensive = spot("use1-az1", "g5.xlarge", 1.50)
    candidates = build_candidates(data([expensive]), CONFIG).candidates
    spot_candidate = next(c for c in candidates if c.pool.market == "spot")
    assert spot_candidate.price_usd_per_hour == 1.006


def test_interruption_cost_grows_with_the_advisor_band() -> None:
    calm = spot("use1-az1", "g5.xlarge", 0.40, band=0)
    wild = spot("use1-az2", "g5.xlarge", 0.40, band=4)
    candidates = build_candidates(data([calm, wild], []), CONFIG).candidates
    by_zone = {c.pool.zone: c for c in candidates}
    assert by_zone["use1-az1"].interruption_usd_per_hour > 0
    assert (
        by_zone["use1-az1"].interruption_usd_per_hour
        < by_zone["use1-az2"].interruption_usd_per_hour
    )
    # hazard (25%/730 h) x 600 s x the replacement's price: spot as often as a launch into the
    # pool succeeds (the band's prior availability), else on demand.
    available = advisor_prior(4).availability
    assert 0.9 < available < 1.0
    replacement = available * 0.40 + (1 - available) * 1.006
    assert by_zone["use1-az2"].interruption_usd_per_hour == pytest.approx(
        0.25 / 730 * (600 / 3600) * replacement
    )


def test_placement_scores_cap_pools_and_unscored_pools_get_the_default_cap() -> None:
    assert placement_cap({1: 9, 4: 6, 16: 3}, 5) == 4
    assert placement_cap({1: 4}, 5) == 0
    market = data(
        [
            spot("use1-az1", "g5.xlarge", 0.10, scores={1: 9, 4: 3}),
            spot("use1-az2", "g5.xlarge", 0.10, scores={}),
            spot("use1-az3", "g5.xlarge", 0.10, scores={1: 2}),
        ],
        [offer("g5.xlarge")],
    )
    candidates = build_candidates(market, CONFIG)
    caps = {c.pool.zone: (c.cap, c.cap_source) for c in candidates.candidates}
    assert caps["use1-az1"] == (1.0, "placement-score")
    assert caps["use1-az2"] == (4.0, "default")
    assert "use1-az3" not in caps
    assert any("placement score" in reason for reason in candidates.excluded)
    plan = _plan(market=market, slo=800)
    spot_counts = {a.pool.zone: a.count for a in plan.allocations if a.pool.market == "spot"}
    assert spot_counts.get("use1-az1", 0) <= 1
    assert any("no placement score" in warning for warning in plan.warnings)


def test_unavailable_and_excluded_pools_are_left_out() -> None:
    mark = UnavailablePool(
        "us-east-1",
        "use1-az1",
        "g5.xlarge",
        "spot",
        "InsufficientInstanceCapacity",
        AS_OF - timedelta(minutes=1),
        AS_OF + timedelta(minutes=4),
    )
    base = two_zone_market()
    market = data(list(base.pool_stats), list(base.on_demand), unavailable=[mark])
    plan = _plan(
        market=market, exclude_pools=[PoolKey("us-east-1", "use1-az2", "g6e.xlarge", "spot")]
    )
    used = {a.pool for a in plan.allocations}
    assert PoolKey("us-east-1", "use1-az1", "g5.xlarge", "spot") not in used
    assert PoolKey("us-east-1", "use1-az2", "g6e.xlarge", "spot") not in used


def test_filters_markets_regions_and_types() -> None:
    spot_only = _plan(PlannerConfig(markets="spot"))
    assert {a.pool.market for a in spot_only.allocations} == {"spot"}
    on_demand_only = _plan(PlannerConfig(markets="on-demand"))
    assert {a.pool.market for a in on_demand_only.allocations} == {"on-demand"}
    g5_only = _plan(PlannerConfig(instance_types_allow=["g5.xlarge"]))
    assert {a.pool.instance_type for a in g5_only.allocations} == {"g5.xlarge"}
    with pytest.raises(InfeasiblePlanError, match="regions_allow"):
        _plan(PlannerConfig(regions_allow=["eu-west-1"]))


def test_quota_from_the_oracle_beats_config_and_infeasibility_says_what_to_raise() -> None:
    def quota(vcpus: float) -> dict[tuple[str, str], VcpuQuota]:
        name = "All G and VT Spot Instance Requests"
        found = VcpuQuota("us-east-1", "L-3819A6DF", name, vcpus, "aws", AS_OF)
        return {("us-east-1", "L-3819A6DF"): found}

    base = two_zone_market()
    # 4 vCPUs: one g6e.xlarge (900 tok/s) at most.
    with pytest.raises(InfeasiblePlanError) as raised:
        _plan(market=data(list(base.pool_stats), [], quotas=quota(4.0)))
    message = str(raised.value)
    assert raised.value.exit_code == 1
    assert "quotas allow 900 tok/s" in message
    assert "L-3819A6DF" in message and "us-east-1" in message
    # 8 vCPUs reach 1,800 tok/s, but not in two zones that each carry the SLO alone.
    with pytest.raises(InfeasiblePlanError, match=r"raise All G and VT Spot.*relax planner\.hedge"):
        _plan(market=data(list(base.pool_stats), [], quotas=quota(8.0)))
    # The same limit from config when the oracle holds none.
    config = PlannerConfig(
        markets="spot",
        quotas=QuotasConfig(regions={"us-east-1": QuotaConfig(spot_g_vt_vcpus=4.0)}),
    )
    with pytest.raises(InfeasiblePlanError, match="quotas allow 900 tok/s"):
        _plan(config, market=data(list(base.pool_stats), []))
    # An oracle figure wins over config.
    assert _plan(config, market=data(list(base.pool_stats), [], quotas=quota(64.0))).allocations


def test_infeasible_hedge_and_budget_messages() -> None:
    one_zone = data([spot("use1-az1", "g5.xlarge", 0.40)], [])
    with pytest.raises(InfeasiblePlanError, match=r"relax planner\.hedge"):
        _plan(market=one_zone)
    with pytest.raises(InfeasiblePlanError, match=r"above the budget of \$1.00/h"):
        _plan(PlannerConfig(budget_usd_per_hour=1.0))


def test_an_unchanged_market_returns_the_running_fleet_unchanged() -> None:
    first = _plan()
    running = [RunningInstance(a.pool, a.count) for a in first.allocations]
    again = _plan(running=running)
    assert [(a.pool, a.count) for a in again.allocations] == [
        (a.pool, a.count) for a in first.allocations
    ]
    assert again.switching_usd_per_hour == 0.0


def test_binding_constraints_are_explained() -> None:
    plan = _plan()
    names = [b.constraint for b in plan.binding]
    assert any(name.startswith("hedge:") or name == "throughput" for name in names)
    assert all(b.explanation for b in plan.binding)


def test_sample_reference_and_stale_data_are_flagged() -> None:
    old = AS_OF - timedelta(days=5)
    market = data(
        [
            spot("use1-az1", "g5.xlarge", 0.40, source="sample", observed_at=old),
            spot("use1-az2", "g5.xlarge", 0.45, source="sample", observed_at=old),
        ],
        [offer("g5.xlarge", source="sample")],
        goodput_source="reference",
    )
    plan = _plan(market=market)
    text = " ".join(plan.warnings)
    assert "SAMPLE" in text
    assert "reference" in text
    assert "5.0 days old" in text
    kinds = {age.kind: age for age in plan.data}
    assert kinds["spot prices"].sources == ("sample",)
    assert kinds["spot prices"].age_hours == pytest.approx(120.0)


def test_fresh_measured_data_raises_no_warning() -> None:
    assert _plan().warnings == []


def test_to_dict_has_the_documented_keys() -> None:
    payload = _plan().to_dict()
    for key in (
        "slo_tokens_per_second",
        "tokens_per_second",
        "cost_usd_per_hour",
        "tokens_per_second_after_worst_loss",
        "allocations",
        "baselines",
    ):
        assert key in payload
    allocation = payload["allocations"][0]
    for key in (
        "region",
        "availability_zone",
        "instance_type",
        "market",
        "count",
        "tokens_per_second_each",
        "price_usd_per_hour_each",
    ):
        assert key in allocation
    assert payload["baselines"]["all_on_demand"]["cost_usd_per_hour"] > 0


@settings(max_examples=40, deadline=None)
@given(
    prices=st.lists(st.floats(0.1, 1.0), min_size=4, max_size=4),
    bands=st.lists(st.integers(0, 4), min_size=4, max_size=4),
    slo=st.integers(100, 4000),
)
def test_any_small_market_plan_meets_slo_hedge_and_is_no_dearer_than_on_demand(
    prices: list[float], bands: list[int], slo: int
) -> None:
    zones = ["use1-az1", "use1-az2", "use1-az1", "use1-az2"]
    types = ["g5.xlarge", "g5.xlarge", "g6e.xlarge", "g6e.xlarge"]
    market = data(
        [spot(z, t, p, band=b) for z, t, p, b in zip(zones, types, prices, bands, strict=True)]
    )
    plan = _plan(market=market, slo=float(slo))
    assert plan.tokens_per_second >= slo
    for zone in ("use1-az1", "use1-az2"):
        assert _knock_out(plan, zone) >= slo
    on_demand = plan.baselines["all_on_demand"].cost_usd_per_hour
    assert on_demand is not None and plan.cost_usd_per_hour <= on_demand + 1e-9


# --- on the database --------------------------------------------------------------------------


def test_plan_on_the_real_skypilot_snapshot(engine: Engine, shared_data: Path) -> None:
    """The SkyPilot catalog snapshot (real per-AZ spot and on-demand prices), the EC2 specs and
    the Spot Advisor feed, imported; reference and estimated goodput for the default model."""
    observed = datetime(2025, 3, 1, tzinfo=UTC)
    import_files(
        engine,
        [
            shared_data / "skypilot-catalog" / "aws_gpu_vms_snapshot_27f67dd.csv",
            shared_data / "moto-ec2" / "instance_types_accelerated.csv",
            shared_data / "spotinfo-advisor" / "spot_advisor_gpu.csv",
        ],
        observed_at=observed,
    )
    assert ensure_goodput_figures(engine, model=CONFIG.model) > 0
    plan = make_plan(
        engine, config=CONFIG, slo_tokens_per_second=2000, as_of=observed + timedelta(hours=1)
    )
    assert plan.tokens_per_second >= 2000
    zones = {a.pool.zone for a in plan.allocations if a.pool.market == "spot"}
    for zone in zones:
        assert _knock_out(plan, zone) >= 2000
    on_demand = plan.baselines["all_on_demand"].cost_usd_per_hour
    assert on_demand is not None and plan.cost_usd_per_hour < on_demand
    assert {age.kind: age.sources for age in plan.data}["spot prices"] == ("file",)
    # No placement scores in a catalog: every chosen spot pool is capped and flagged.
    assert any("no placement score" in warning for warning in plan.warnings)
    # As of a day before the snapshot, the oracle knew nothing.
    with pytest.raises(InfeasiblePlanError, match="holds no prices"):
        make_plan(
            engine, config=CONFIG, slo_tokens_per_second=2000, as_of=observed - timedelta(days=1)
        )
