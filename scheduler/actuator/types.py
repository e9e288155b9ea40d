"""Plain data the actuator works with: pools, target allocations, fleet replicas, actions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Market = Literal["spot", "on-demand"]


@dataclass(frozen=True, order=True)
class Pool:
    """Where a replica runs; the same fields as the planner's ``PoolKey``."""

    region: str
    zone: str
    instance_type: str
    market: str

    @property
    def label(self) -> str:
        return f"{self.region}/{self.zone}/{self.instance_type}/{self.market}"


@dataclass(frozen=True)
class TargetAllocation:
    """``count`` replicas wanted in ``pool`` (one row of a stored plan)."""

    pool: Pool
    count: int
    availability_zone: str | None = None
    availability_zone_id: str | None = None
    price_usd_per_hour_each: float = 0.0
    tokens_per_second_each: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("pool"))
        return out

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> TargetAllocation:
        pool = Pool(row["region"], row["zone"], row["instance_type"], row["market"])
        return cls(
            pool=pool,
            count=int(row["count"]),
            availability_zone=row.get("availability_zone"),
            availability_zone_id=row.get("availability_zone_id"),
            price_usd_per_hour_each=float(row.get("price_usd_per_hour_each", 0.0)),
            tokens_per_second_each=float(row.get("tokens_per_second_each", 0.0)),
        )


@dataclass(frozen=True)
class FleetReplica:
    """A live replica as the diff sees it."""

    replica_id: int
    pool: Pool
    state: str
    instance_id: str | None = None


@dataclass(frozen=True)
class Action:
    """One step the actuator will take: launch into a pool, or terminate a replica."""

    kind: Literal["launch", "terminate"]
    pool: Pool
    reason: str
    replica_id: int | None = None
    allocation: TargetAllocation | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pool": self.pool.label,
            "replica_id": self.replica_id,
            "reason": self.reason,
        }
