"""The plan risk model: attainment and expected deficit from the pools' learned risk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.planning.attainment import PlannedPool, plan_risk

TAU_H = 600 / 3600


def _pool(
    zone: str, tps: float, hazard: float, *, region: str = "r1", market: str = "spot"
) -> PlannedPool:
    return PlannedPool(region, zone, market, tps, hazard)


plans = st.lists(
    st.builds(
        _pool,
        zone=st.sampled_from(["a", "b", "c"]),
        tps=st.floats(0, 1000),
        hazard=st.floats(0, 2),
        region=st.sampled_from(["r1", "r2"]),
        market=st.sampled_from(["spot", "spot", "on-demand"]),
    ),
    max_size=6,
)


@given(plans, st.floats(1, 2000), st.floats(0, 1), st.integers(0, 5), st.floats(0, 2))
def test_more_hazard_never_raises_attainment(
    pools: list[PlannedPool], slo: float, rho: float, which: int, extra: float
) -> None:
    if not pools:
        return
    index = which % len(pools)
    riskier = list(pools)
    riskier[index] = PlannedPool(
        pools[index].region,
        pools[index].zone,
        pools[index].market,
        pools[index].tokens_per_second,
        pools[index].hazard_per_hour + extra,
    )
    base = plan_risk(
        pools, slo_tokens_per_second=slo, replacement_hours=TAU_H, region_correlation=rho
    )
    worse = plan_risk(
        riskier, slo_tokens_per_second=slo, replacement_hours=TAU_H, region_correlation=rho
    )
    assert 0.0 <= worse.attainment <= 1.0
    assert worse.attainment <= base.attainment + 1e-9
    assert (
        worse.expected_deficit_tokens_per_second >= base.expected_deficit_tokens_per_second - 1e-9
    )


def test_on_demand_never_misses_and_a_short_plan_always_does() -> None:
    on_demand = [_pool("", 600, 5.0, market="on-demand")]
    kept = plan_risk(
        on_demand, slo_tokens_per_second=500, replacement_hours=TAU_H, region_correlation=0.5
    )
    assert (kept.attainment, kept.expected_deficit_tokens_per_second) == (1.0, 0.0)
    short = plan_risk(
        on_demand, slo_tokens_per_second=700, replacement_hours=TAU_H, region_correlation=0.5
    )
    assert short.attainment == 0.0 and short.expected_deficit_tokens_per_second == 100


def test_hedges_remove_the_events_they_cover() -> None:
    """Two AZs of one region at 1 loss/h, replacement 10 min: each AZ's d is 1/6; with
    rho = 0.5, independent outages a, b (d / 2 each) and the shock s (d / 2)."""
    d = TAU_H
    half = d / 2
    unhedged = [_pool("a", 500, 1.0), _pool("b", 0.0, 1.0)]
    risk = plan_risk(
        unhedged, slo_tokens_per_second=500, replacement_hours=TAU_H, region_correlation=0.5
    )
    # Only zone a serves (b holds nothing, so has no outage): a alone or the shock miss.
    assert risk.attainment == pytest.approx((1 - half) * (1 - half))
    hedged = [_pool("a", 500, 1.0), _pool("b", 500, 1.0)]
    risk = plan_risk(
        hedged, slo_tokens_per_second=500, replacement_hours=TAU_H, region_correlation=0.5
    )
    # Each AZ alone is covered; the shock, and a with b, are not.
    assert risk.attainment == pytest.approx((1 - half) * (1 - half * half), rel=1e-9)
    assert risk.worst_event == "all of r1"
    across = [_pool("a", 500, 1.0), _pool("b", 500, 1.0, region="r2")]
    risk = plan_risk(
        across, slo_tokens_per_second=500, replacement_hours=TAU_H, region_correlation=0.5
    )
    # Across regions a zone is down alone or by its region's shock, q = 1 - (1 - d / 2)^2 (about
    # d): only both at once miss.
    q = 1 - (1 - half) ** 2
    assert risk.attainment == pytest.approx(1 - q * q, rel=1e-9)


def test_many_zones_are_not_counted_twice() -> None:
    """Twenty zones of twenty regions, each down 10% of the time, 500 tok/s each, SLO 9,001:
    any two down at once miss. Exactly, P(two or more of 20) = 1 - 0.9^20 - 2 * 0.9^19."""
    pools = [
        PlannedPool(f"r{i}", "z", "spot", 500.0, 0.6) for i in range(20)
    ]  # d = 0.6 x 1/6 = 0.1
    risk = plan_risk(
        pools, slo_tokens_per_second=9001, replacement_hours=TAU_H, region_correlation=0.0
    )
    exact = 1 - 0.9**20 - 20 * 0.1 * 0.9**19
    assert 1 - risk.attainment == pytest.approx(exact, rel=1e-9)
