"""diff(fleet, plan) returns actions that turn the fleet into the plan, keeping the healthy."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from scheduler.actuator.diff import diff
from scheduler.actuator.types import FleetReplica, Pool, TargetAllocation

POOLS = [
    Pool("us-east-1", "use1-az1", "g5.xlarge", "spot"),
    Pool("us-east-1", "use1-az2", "g5.xlarge", "spot"),
    Pool("us-east-1", "use1-az2", "g6.xlarge", "on-demand"),
]
STATES = ["PENDING", "PROVISIONING", "STARTING", "READY", "NOT_READY"]


@given(
    fleet=st.lists(st.tuples(st.sampled_from(POOLS), st.sampled_from(STATES)), max_size=12),
    wanted=st.lists(st.integers(0, 5), min_size=len(POOLS), max_size=len(POOLS)),
)
def test_applying_the_actions_yields_the_plan(
    fleet: list[tuple[Pool, str]], wanted: list[int]
) -> None:
    replicas = [FleetReplica(i + 1, pool, state) for i, (pool, state) in enumerate(fleet)]
    plan = [TargetAllocation(pool, count) for pool, count in zip(POOLS, wanted, strict=True)]
    actions = diff(replicas, plan)

    after = Counter(r.pool for r in replicas)
    for action in actions:
        after[action.pool] += 1 if action.kind == "launch" else -1
    assert +after == +Counter({a.pool: a.count for a in plan})
    kinds = [a.kind for a in actions]
    assert kinds == sorted(kinds)  # launches before terminations (make before break)
    terminated = [a.replica_id for a in actions if a.kind == "terminate"]
    assert len(terminated) == len(set(terminated))
    # Nothing both launched and terminated in one pool.
    launched_pools = {a.pool for a in actions if a.kind == "launch"}
    assert not launched_pools & {a.pool for a in actions if a.kind == "terminate"}


def test_surplus_keeps_ready_replicas() -> None:
    pool = POOLS[0]
    fleet = [
        FleetReplica(1, pool, "READY"),
        FleetReplica(2, pool, "NOT_READY"),
        FleetReplica(3, pool, "READY"),
    ]
    actions = diff(fleet, [TargetAllocation(pool, 2)])
    assert [(a.kind, a.replica_id) for a in actions] == [("terminate", 2)]


def test_a_matching_fleet_needs_nothing() -> None:
    fleet = [FleetReplica(1, POOLS[1], "READY")]
    assert diff(fleet, [TargetAllocation(POOLS[1], 1), TargetAllocation(POOLS[0], 0)]) == []
