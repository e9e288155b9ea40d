"""What a fleet falls back to when spot launches keep failing (pure).

After a capacity error the actuator replans without the pools that failed, at most
:data:`MAX_REPLANS` times. When the launches of the last replan fail too,
:func:`cover_on_demand` buys what they were to add on demand: each failed spot pool keeps what
already runs there, and the rest of its count moves to the on-demand pool of its region and
instance type that stands in for it (:func:`cover_type`: the cheapest on-demand type of the
region that serves at least as much), which spot capacity does not limit. The fleet then
regains its plan's capacity, and its hedge, one start-up later rather than at the next
rebalance, which may move it back to spot. The service's executor and the backtest's planner
policies both use it (one code path), when ``service.on_demand_fallback`` is on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from typing import TypeVar

P = TypeVar("P", bound=Hashable)

#: Replans after capacity errors, in one command of the service or one moment of the backtest.
MAX_REPLANS = 3


def cover_on_demand(
    counts: Mapping[P, int],
    running: Mapping[P, int],
    failed: Collection[P],
    on_demand: Callable[[P], P],
) -> dict[P, int] | None:
    """``counts`` (instances per pool) with every pool of ``failed`` cut to what runs there
    (``running``) and the rest of its count added to ``on_demand(pool)``; ``None`` when a
    failed pool is on-demand itself (``on_demand(pool) == pool``: nothing left to fall back
    to). Pools left at zero are dropped; the total count never changes."""
    covered = {pool: count for pool, count in counts.items() if pool not in failed}
    for pool in (pool for pool in counts if pool in failed):
        target = on_demand(pool)
        if target == pool:
            return None
        kept = min(running.get(pool, 0), counts[pool])
        covered[pool] = kept
        covered[target] = covered.get(target, 0) + counts[pool] - kept
    return {pool: count for pool, count in covered.items() if count > 0}


def cover_type(
    instance_type: str,
    region: str,
    *,
    goodput: Mapping[str, float],
    on_demand_usd_per_hour: Mapping[tuple[str, str], float],
) -> str:
    """The on-demand type that covers one instance of ``instance_type`` in ``region``: of the
    region's on-demand types that serve at least its goodput (tok/s), the cheapest per hour
    (ties: the type itself, then by name). One for one, so the cover's count is the failed
    pool's and its throughput at least as large. A spot pool is planned at spot prices, where a
    larger size of the same GPU can be the cheapest; on demand its list price is higher than the
    smaller size's for the same tok/s (g5.4xlarge $1.624/h against g5.xlarge $1.006/h in
    us-east-1: AWS list prices, as SkyPilot's AWS catalog records them). The type itself when
    nothing else qualifies or its figures are unknown."""
    own = goodput.get(instance_type)
    if own is None:
        return instance_type
    options = [
        (price, name != instance_type, name)
        for (where, name), price in on_demand_usd_per_hour.items()
        if where == region and goodput.get(name, 0.0) >= own
    ]
    return min(options)[2] if options else instance_type
