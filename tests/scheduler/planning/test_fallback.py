"""The on-demand cover after spent replans: what moves, what stays, and when it gives up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduler.planning.fallback import cover_on_demand, cover_type
from scheduler.planning.model import PoolKey


def _on_demand(pool: PoolKey) -> PoolKey:
    return pool._replace(zone="", market="on-demand")


SPOT_A = PoolKey("us-east-1", "use1-az1", "g6.xlarge", "spot")
SPOT_B = PoolKey("us-east-1", "use1-az2", "g6.xlarge", "spot")
SPOT_C = PoolKey("us-west-2", "usw2-az1", "g6.xlarge", "spot")
OTHER_TYPE = PoolKey("us-east-1", "use1-az1", "g5.xlarge", "spot")
ON_DEMAND = _on_demand(SPOT_A)


def test_a_failed_pool_keeps_what_runs_and_moves_the_rest_to_its_region_on_demand() -> None:
    covered = cover_on_demand(
        {SPOT_A: 3, SPOT_B: 2, SPOT_C: 1, ON_DEMAND: 1},
        running={SPOT_A: 1, SPOT_C: 1},
        failed=[SPOT_A, SPOT_B],
        on_demand=_on_demand,
    )
    assert covered == {SPOT_A: 1, SPOT_C: 1, ON_DEMAND: 1 + 2 + 2}


def test_nothing_is_left_to_fall_back_to_when_an_on_demand_pool_failed() -> None:
    assert cover_on_demand({ON_DEMAND: 2}, {}, [ON_DEMAND], _on_demand) is None


pools = st.sampled_from([SPOT_A, SPOT_B, SPOT_C, OTHER_TYPE, ON_DEMAND])


@given(
    counts=st.dictionaries(pools, st.integers(1, 6), max_size=5),
    running=st.dictionaries(pools, st.integers(0, 6), max_size=5),
    failed=st.sets(pools.filter(lambda p: p.market == "spot")),
)
def test_the_cover_keeps_every_instance_and_launches_none_into_a_failed_pool(
    counts: dict[PoolKey, int], running: dict[PoolKey, int], failed: set[PoolKey]
) -> None:
    covered = cover_on_demand(counts, running, failed, _on_demand)
    assert covered is not None

    # The same number of instances of each type in each region: the capacity is kept.
    def per_type(fleet: dict[PoolKey, int]) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for pool, count in fleet.items():
            key = (pool.region, pool.instance_type)
            out[key] = out.get(key, 0) + count
        return out

    assert per_type(covered) == per_type(counts)
    for pool, count in covered.items():
        assert count > 0
        if pool in failed:
            assert count == min(running.get(pool, 0), counts[pool])
        elif pool.market == "spot":
            assert count == counts[pool]


# On-demand list prices in us-east-1 (SkyPilot's AWS catalog) and made-up goodput per type.
PRICES = {
    ("us-east-1", "g5.xlarge"): 1.006,
    ("us-east-1", "g5.4xlarge"): 1.624,
    ("us-east-1", "g6.xlarge"): 0.805,
    ("us-west-2", "g5.xlarge"): 1.006,
}
GOODPUT = {"g5.xlarge": 1000.0, "g5.4xlarge": 1000.0, "g6.xlarge": 500.0}


def _cover(instance_type: str, region: str) -> str:
    return cover_type(instance_type, region, goodput=GOODPUT, on_demand_usd_per_hour=PRICES)


def test_the_cover_is_the_cheapest_type_of_the_region_that_serves_as_much() -> None:
    # A spot g5.4xlarge is covered by a g5.xlarge: the same tok/s for $1.006/h, not $1.624/h;
    # never by the cheaper g6.xlarge, which serves half.
    assert _cover("g5.4xlarge", "us-east-1") == "g5.xlarge"
    assert _cover("g6.xlarge", "us-east-1") == "g6.xlarge"
    # Only the region's prices count; unknown figures keep the type itself.
    assert _cover("g5.4xlarge", "us-west-2") == "g5.xlarge"
    assert _cover("g5.4xlarge", "eu-west-1") == "g5.4xlarge"
    assert _cover("p5.48xlarge", "us-east-1") == "p5.48xlarge"
    # At equal prices the type itself stays.
    tie = {("us-east-1", "g5.xlarge"): 1.0, ("us-east-1", "g5.4xlarge"): 1.0}
    assert cover_type("g5.4xlarge", "us-east-1", goodput=GOODPUT, on_demand_usd_per_hour=tie) == (
        "g5.4xlarge"
    )


@given(
    goodput=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]), st.floats(1.0, 1e4), min_size=1, max_size=4
    ),
    prices=st.dictionaries(
        st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["a", "b", "c", "d"])),
        st.floats(0.1, 50.0),
        max_size=8,
    ),
    failed=st.sampled_from(["a", "b", "c", "d"]),
)
def test_the_cover_never_serves_less_nor_costs_more_than_the_type_itself(
    goodput: dict[str, float], prices: dict[tuple[str, str], float], failed: str
) -> None:
    chosen = cover_type(failed, "r1", goodput=goodput, on_demand_usd_per_hour=prices)
    if failed not in goodput:
        assert chosen == failed
        return
    if chosen != failed:
        assert goodput[chosen] >= goodput[failed]
        assert ("r1", chosen) in prices
        assert prices[("r1", chosen)] <= prices.get(("r1", failed), float("inf"))
        cheaper = [
            name for (region, name), price in prices.items()
            if region == "r1" and goodput.get(name, 0.0) >= goodput[failed]
            and price < prices[("r1", chosen)]
        ]  # fmt: skip
        assert cheaper == []
