"""The bounds are lower bounds: no fleet that meets a bound's conditions costs less."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.backtest.bounds import cover_usd_per_hour, hedged_usd_per_hour

TYPES = 3
ZONES = 4
prices = st.floats(min_value=0.05, max_value=20.0, allow_nan=False)
goodputs = st.floats(min_value=10.0, max_value=5000.0, allow_nan=False)
counts = st.integers(min_value=0, max_value=3)


@st.composite
def markets(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Columns: one spot pool per (zone, type), then one on-demand offer per type; a fleet of
    whole instances over them."""
    goodput = np.array([draw(goodputs) for _ in range(TYPES)])
    kind = np.r_[np.tile(np.arange(TYPES), ZONES), np.arange(TYPES)]
    zone = np.r_[np.repeat(np.arange(ZONES), TYPES), np.full(TYPES, -1)]
    price = np.array([draw(prices) for _ in range(kind.size)])
    price[kind.size - TYPES :] = np.maximum(price[kind.size - TYPES :], 1.0)
    fleet = np.array([draw(counts) for _ in range(kind.size)])
    return {"kind": kind, "zone": zone, "price": price, "goodput": goodput[kind], "fleet": fleet}


@settings(max_examples=150, deadline=None)
@given(markets())
def test_no_hedged_fleet_costs_less_than_the_hedged_bound(market: dict[str, np.ndarray]) -> None:
    """The fleet survives the loss of any one zone's spot instances for ``S`` = the least it
    keeps; at that SLO it is a hedged fleet, so it costs at least the bound."""
    spot = market["zone"] >= 0
    served = market["fleet"] * market["goodput"]
    kept = [served.sum() - served[spot & (market["zone"] == z)].sum() for z in range(ZONES)]
    slo = float(min(kept))
    if slo <= 0:
        return
    cost = float(market["fleet"] @ market["price"])
    bound = hedged_usd_per_hour(
        market["price"], market["kind"], market["goodput"], np.where(spot, market["zone"], 0),
        spot, slo, TYPES,
    )  # fmt: skip
    assert bound <= cost * (1 + 1e-9)


@settings(max_examples=150, deadline=None)
@given(markets(), st.lists(st.booleans(), min_size=ZONES, max_size=ZONES))
def test_no_fleet_of_usable_pools_costs_less_than_the_clairvoyant_bound(
    market: dict[str, np.ndarray], usable_zones: list[bool]
) -> None:
    """A fleet that runs only in the pools that can serve (on-demand always can) and carries
    ``S`` costs at least the cover of ``S`` over those pools at their prices."""
    usable = (market["zone"] < 0) | np.array([usable_zones[z] for z in market["zone"]])
    fleet = np.where(usable, market["fleet"], 0)
    slo = float(fleet @ market["goodput"])
    if slo <= 0:
        return
    prices = np.where(usable, market["price"], np.inf)
    bound = cover_usd_per_hour(prices, market["kind"], market["goodput"], slo, TYPES)
    assert bound <= float(fleet @ market["price"]) * (1 + 1e-9)


@settings(max_examples=150, deadline=None)
@given(markets())
def test_no_region_hedged_fleet_costs_less_than_the_region_hedged_bound(
    market: dict[str, np.ndarray],
) -> None:
    """Zones 0 and 1 form one region, 2 and 3 another: a fleet that survives the loss of
    either region's spot instances for ``S`` = the least it keeps costs at least the bound
    computed with regions as the groups (``hindsight-region``)."""
    spot = market["zone"] >= 0
    region = np.where(spot, market["zone"] // 2, -1)
    served = market["fleet"] * market["goodput"]
    kept = [served.sum() - served[spot & (region == r)].sum() for r in range(ZONES // 2)]
    slo = float(min(kept))
    if slo <= 0:
        return
    cost = float(market["fleet"] @ market["price"])
    bound = hedged_usd_per_hour(
        market["price"], market["kind"], market["goodput"], np.where(spot, region, 0), spot,
        slo, TYPES,
    )  # fmt: skip
    assert bound <= cost * (1 + 1e-9)


def test_the_hedged_bound_needs_two_groups_and_is_tight_for_one_instance_each() -> None:
    """One type carrying the SLO alone, spot at $1/h in AZ 0 and $2/h in AZ 1, on-demand at
    $5/h: the cheapest hedged fleet is one instance in each AZ ($3/h), and the bound is that
    (not twice the cheapest pool); with regions as groups and both AZs in one region, it is
    one spot instance and one on-demand."""
    prices = np.array([1.0, 2.0, 5.0])
    kind = np.zeros(3, dtype=np.int64)
    goodput = np.full(3, 100.0)
    spot = np.array([True, True, False])
    by_zone = hedged_usd_per_hour(prices, kind, goodput, np.array([0, 1, -1]), spot, 100.0, 1)
    assert by_zone == 3.0
    by_region = hedged_usd_per_hour(prices, kind, goodput, np.array([0, 0, -1]), spot, 100.0, 1)
    assert by_region == 5.0  # all on demand beats $1 + $5
