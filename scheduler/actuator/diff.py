"""``diff(fleet, plan)``: what to launch and what to terminate, returned as data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from scheduler.actuator.types import Action, FleetReplica, Pool, TargetAllocation
from scheduler.models import ReplicaState

#: When a pool has surplus, the replicas least worth keeping go first.
_TERMINATION_ORDER: dict[str, int] = {
    ReplicaState.FAILED: 0,
    ReplicaState.NOT_READY: 1,
    ReplicaState.PENDING: 2,
    ReplicaState.PROVISIONING: 3,
    ReplicaState.STARTING: 4,
    ReplicaState.READY: 5,
}


def diff(fleet: Sequence[FleetReplica], plan: Sequence[TargetAllocation]) -> list[Action]:
    """Actions that turn ``fleet`` into ``plan``: launches first, then terminations.

    Pools are compared by (region, zone, instance type, market); a replica in a pool the plan
    does not name is surplus. Within a pool the unhealthiest and then newest replicas are the
    surplus, so serving ones are kept. The result is deterministic for a given input.
    """
    wanted: Counter[Pool] = Counter()
    allocation_of: dict[Pool, TargetAllocation] = {}
    for allocation in plan:
        if allocation.count > 0:
            wanted[allocation.pool] += allocation.count
            allocation_of.setdefault(allocation.pool, allocation)
    by_pool: dict[Pool, list[FleetReplica]] = {}
    for replica in fleet:
        by_pool.setdefault(replica.pool, []).append(replica)

    launches: list[Action] = []
    for pool in sorted(wanted):
        have = len(by_pool.get(pool, []))
        for _ in range(max(0, wanted[pool] - have)):
            launches.append(
                Action(
                    kind="launch",
                    pool=pool,
                    reason=f"plan wants {wanted[pool]} in {pool.label}, fleet has {have}",
                    allocation=allocation_of[pool],
                )
            )
    terminations: list[Action] = []
    for pool in sorted(by_pool):
        replicas = sorted(
            by_pool[pool], key=lambda r: (_TERMINATION_ORDER.get(r.state, 0), -r.replica_id)
        )
        surplus = len(replicas) - wanted.get(pool, 0)
        for replica in replicas[: max(0, surplus)]:
            terminations.append(
                Action(
                    kind="terminate",
                    pool=pool,
                    replica_id=replica.replica_id,
                    reason=f"plan wants {wanted.get(pool, 0)} in {pool.label}, "
                    f"fleet has {len(replicas)}",
                )
            )
    return launches + terminations
