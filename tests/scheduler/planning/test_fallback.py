"""The on-demand cover after spent replans: what moves, what stays, and when it gives up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduler.planning.fallback import cover_on_demand
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
