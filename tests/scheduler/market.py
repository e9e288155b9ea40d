"""A tiny hand-made market in the oracle's tables, for end-to-end tests with the real planner.

Two GPU types in the three moto AZs of us-east-1; the figures are made up for the tests (the
on-demand prices are of the order of the public list prices of g5.xlarge and g6.xlarge).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import (
    BenchmarkRunModel,
    InstanceTypeModel,
    OfferingModel,
    OnDemandPriceModel,
    SpotPriceModel,
)

REGION = "us-east-1"
MODEL = "test/model-8b"
ON_DEMAND_USD = {"g5.xlarge": 1.006, "g6.xlarge": 0.805}
GOODPUT = {"g5.xlarge": 400.0, "g6.xlarge": 300.0}


def seed_market(
    engine: Engine,
    zones: list[tuple[str, str]],
    spot_usd: dict[tuple[str, str], float],
    *,
    now: datetime | None = None,
) -> None:
    """``spot_usd``: (zone id, instance type) -> price held for the past 8 days."""
    now = now or datetime.now(UTC)
    start = now - timedelta(days=8)
    names = dict((zone_id, name) for name, zone_id in zones)
    with transaction(engine) as session:
        for instance_type in ON_DEMAND_USD:
            session.add(
                InstanceTypeModel(
                    instance_type=instance_type,
                    family=instance_type.split(".")[0],
                    accelerator_name="A10G" if instance_type.startswith("g5") else "L4",
                    accelerator_count=1,
                    accelerator_memory_mib_each=24576,
                    vcpus=4,
                    memory_mib=16384,
                    source="file",
                    observed_at=start,
                )
            )
            session.add(
                OnDemandPriceModel(
                    region=REGION,
                    instance_type=instance_type,
                    operating_system="Linux",
                    effective_date=start,
                    price_usd_per_hour=ON_DEMAND_USD[instance_type],
                    source="file",
                    observed_at=start,
                )
            )
            session.add(
                BenchmarkRunModel(
                    model=MODEL,
                    instance_type=instance_type,
                    workload_id="chat-mix-v1",
                    ttft_p95_ms_slo=2000.0,
                    tpot_p95_ms_slo=100.0,
                    goodput_tokens_per_second=GOODPUT[instance_type],
                    source="measured",
                    observed_at=start,
                )
            )
            for name, zone_id in zones:
                session.add(
                    OfferingModel(
                        region=REGION,
                        zone=zone_id,
                        availability_zone=name,
                        availability_zone_id=zone_id,
                        instance_type=instance_type,
                        source="file",
                        observed_at=start,
                    )
                )
        for (zone_id, instance_type), price in spot_usd.items():
            _spot(session, zone_id, names[zone_id], instance_type, price, start)


def set_spot_price(
    engine: Engine,
    zones: list[tuple[str, str]],
    zone_id: str,
    instance_type: str,
    price: float,
    *,
    at: datetime,
) -> None:
    names = dict((z, n) for n, z in zones)
    with transaction(engine) as session:
        _spot(session, zone_id, names[zone_id], instance_type, price, at)


def _spot(
    session: object, zone_id: str, name: str, instance_type: str, price: float, at: datetime
) -> None:
    session.add(  # type: ignore[attr-defined]
        SpotPriceModel(
            region=REGION,
            zone=zone_id,
            availability_zone=name,
            availability_zone_id=zone_id,
            instance_type=instance_type,
            product_description="Linux/UNIX",
            timestamp=at,
            price_usd_per_hour=price,
            source="file",
            observed_at=at,
        )
    )
