"""Where a policy's money went: its bill split by what the instances were doing, and by pool.

Each instance's bill (:meth:`MarketHistory.cost`, per second at the price in force) is cut at
two moments into three phases, which sum to the bill exactly (the price integral is additive):

- ``starting``: from launch until ready (model load; billed, not serving);
- ``serving``: from ready until it stops serving (an interruption notice, or a drain's start);
- ``after_serving``: from then until billing ends (the two-minute notice, or the drain).

An instance that stops serving before it is ready (a notice during start-up) has no serving
phase: its time until ready is start-up and the rest after-serving. The cut points are
``b = clamp(ready, launched, end)`` and ``c = clamp(stop serving, b, end)``.

Each phase is kept per market (``spot_serving``, ``on_demand_starting``, ...), so that a
policy's excess over a bound can be read as more instances, pricier ones, start-ups (churn) or
on-demand cover. Per pool: instance-hours, USD, launches and interruptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scheduler.backtest.fleet import Instance
from scheduler.backtest.market import MarketHistory
from scheduler.planning.model import PoolKey

PHASES = ("starting", "serving", "after_serving")
#: The keys of :attr:`Spend.by_phase`: ``spot_starting`` ... ``on_demand_after_serving``.
SPEND_KEYS = tuple(f"{market}_{phase}" for market in ("spot", "on_demand") for phase in PHASES)


@dataclass(frozen=True)
class PoolSpend:
    """One pool's share of a policy's bill."""

    pool: PoolKey
    instance_hours: float
    cost_usd: float
    launches: int
    interruptions: int

    def to_dict(self) -> dict[str, object]:
        return {
            "region": self.pool.region,
            "zone": self.pool.zone,
            "instance_type": self.pool.instance_type,
            "market": self.pool.market,
            "instance_hours": self.instance_hours,
            "cost_usd": self.cost_usd,
            "launches": self.launches,
            "interruptions": self.interruptions,
        }


@dataclass(frozen=True)
class Spend:
    """A policy's bill: USD per market and phase (:data:`SPEND_KEYS`) and per pool."""

    by_phase: dict[str, float]
    by_pool: list[PoolSpend]

    @property
    def total_usd(self) -> float:
        return sum(self.by_phase.values())


def account(history: MarketHistory, instances: Iterable[Instance]) -> Spend:
    """Split the instances' bill by market and phase, and by pool (the costliest first); the
    phases sum to the bill."""
    by_phase = dict.fromkeys(SPEND_KEYS, 0.0)
    hours: dict[PoolKey, float] = {}
    cost: dict[PoolKey, float] = {}
    launches: dict[PoolKey, int] = {}
    interruptions: dict[PoolKey, int] = {}
    for instance in instances:
        pool = instance.pool
        launched, end = instance.launched_s, instance.end_s
        ready = min(max(instance.ready_s, launched), end)
        stop = min(max(instance.stop_serving_s, ready), end)
        market = pool.market.replace("-", "_")
        phases = (
            history.cost(pool, launched, ready),
            history.cost(pool, ready, stop),
            history.cost(pool, stop, end),
        )
        for phase, usd in zip(PHASES, phases, strict=True):
            by_phase[f"{market}_{phase}"] += usd
        hours[pool] = hours.get(pool, 0.0) + (end - launched) / 3600.0
        cost[pool] = cost.get(pool, 0.0) + sum(phases)
        launches[pool] = launches.get(pool, 0) + 1
        interruptions[pool] = interruptions.get(pool, 0) + int(instance.interrupted_s is not None)
    rows = [
        PoolSpend(pool, hours[pool], cost[pool], launches[pool], interruptions[pool])
        for pool in hours
    ]
    return Spend(by_phase, sorted(rows, key=lambda row: (-row.cost_usd, row.pool)))
