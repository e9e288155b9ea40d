"""Small helpers shared by the service tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import botocore.session
import sqlalchemy as sa
from botocore.stub import Stubber
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.ec2 import TAG_POOL
from scheduler.actuator.types import Pool, TargetAllocation
from scheduler.models import LIVE_STATES, ReplicaModel
from scheduler.plan_store import store_plan

REGION = "us-east-1"


def allocation(
    zone: tuple[str, str],
    count: int,
    *,
    market: str = "spot",
    instance_type: str = "g5.xlarge",
    price: float = 0.5,
) -> TargetAllocation:
    name, zone_id = zone
    return TargetAllocation(
        pool=Pool(REGION, zone_id, instance_type, market),
        count=count,
        availability_zone=name,
        availability_zone_id=zone_id,
        price_usd_per_hour_each=price,
        tokens_per_second_each=250.0,
    )


def hand_plan(
    engine: Engine, allocations: Sequence[TargetAllocation], *, service: str = "llm-test"
) -> int:
    return store_plan(
        engine,
        service=service,
        model="m",
        slo_tokens_per_second=500.0,
        allocations=allocations,
        origin="test",
    )


def running_by_pool(aws: Callable[..., Any]) -> Counter[str]:
    """Instances EC2 has pending or running, counted by their pool tag."""
    ec2 = aws("ec2")
    counts: Counter[str] = Counter()
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            if instance["State"]["Name"] in ("pending", "running"):
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                counts[tags.get(TAG_POOL, "untagged")] += 1
    return counts


def live_by_pool(engine: Engine) -> Counter[str]:
    with transaction(engine) as session:
        rows = session.scalars(
            sa.select(ReplicaModel).where(ReplicaModel.state.in_(LIVE_STATES))
        ).all()
        return Counter(Pool(r.region, r.zone, r.instance_type, r.market).label for r in rows)


def wanted_by_pool(allocations: Sequence[TargetAllocation]) -> Counter[str]:
    return Counter({a.pool.label: a.count for a in allocations if a.count})


def ec2_event(detail_type: str, instance_id: str, event_id: str, **detail: str) -> dict[str, Any]:
    """An EventBridge EC2 event in the shape AWS documents (EC2 User Guide, spot interruption
    notices and rebalance recommendations)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-28T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:ec2:{REGION}a:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, **detail},
    }


def interruption(instance_id: str, event_id: str = "e-1") -> dict[str, Any]:
    return ec2_event(
        "EC2 Spot Instance Interruption Warning",
        instance_id,
        event_id,
        **{"instance-action": "terminate"},
    )


def replica_rows(engine: Engine) -> dict[str, Any]:
    """instance id -> (replica id, state, pool label, target registered)."""
    with transaction(engine) as session:
        return {
            r.instance_id: (
                r.id,
                r.state,
                Pool(r.region, r.zone, r.instance_type, r.market).label,
                r.target_registered,
            )
            for r in session.scalars(sa.select(ReplicaModel))
            if r.instance_id
        }


class SpotRefused:
    """EC2 client: moto for everything, a botocore Stubber answering spot RunInstances with
    ``code`` (the real error response shape), as moto has no capacity errors or quotas."""

    def __init__(self, real: Any, code: str, message: str) -> None:
        self._real = real
        session = botocore.session.get_session()
        self.stubbed = session.create_client("ec2", region_name="us-east-1")
        self.stubber = Stubber(self.stubbed)
        self._code, self._message = code, message
        self.refused = 0

    def run_instances(self, **params: Any) -> Any:
        if "InstanceMarketOptions" not in params:
            return self._real.run_instances(**params)
        self.stubber.add_client_error(
            "run_instances",
            service_error_code=self._code,
            service_message=self._message,
            http_status_code=500 if self._code.startswith("Insufficient") else 400,
        )
        self.refused += 1
        with self.stubber:
            return self.stubbed.run_instances(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
