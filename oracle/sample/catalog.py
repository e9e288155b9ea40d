"""The embedded catalog of GPU and accelerator instance types behind the sample market.

Specs come from DescribeInstanceTypes as recorded in moto 5.2.5's instance_types.json
(Apache-2.0; moto/ec2/resources/instance_types.json.gz), except the p3 types, which moto lacks:
those come from the AWS P3 page (https://aws.amazon.com/ec2/instance-types/p3/). On-demand list
prices and the AZ IDs offering each type are in :mod:`oracle.sample.catalog_prices` (SkyPilot's
AWS catalog, built from the AWS Price List API); :data:`PRICE_CUTS` applies the June 2025
P-family price cut to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from oracle.aws.instance_types import InstanceTypeSpec
from oracle.errors import InputError
from oracle.sample.catalog_prices import AZ_NAMES, ON_DEMAND_OFFERS


@dataclass(frozen=True)
class PriceCut:
    """An on-demand price cut: from ``effective`` the price is ``factor`` times the old one."""

    effective: datetime
    factor: float
    source: str


@dataclass(frozen=True)
class SamplePool:
    """A spot pool of the sample market: an instance type in one AZ."""

    region: str
    availability_zone_id: str
    availability_zone: str
    instance_type: str


def _spec(
    instance_type: str,
    name: str,
    maker: str,
    count: int,
    memory_mib_each: int,
    vcpus: int,
    memory_mib: int,
) -> InstanceTypeSpec:
    return InstanceTypeSpec(
        instance_type=instance_type,
        family=instance_type.split(".")[0],
        accelerator_name=name,
        accelerator_manufacturer=maker,
        accelerator_count=count,
        accelerator_memory_mib_each=memory_mib_each,
        vcpus=vcpus,
        memory_mib=memory_mib,
        architecture="x86_64",
    )


#: Specs: (type, accelerator, maker, accelerators, accelerator memory MiB each, vCPUs, memory
#: MiB). Source: moto 5.2.5 instance_types.json (a DescribeInstanceTypes snapshot) unless noted.
INSTANCE_TYPES: dict[str, InstanceTypeSpec] = {
    spec.instance_type: spec
    for spec in (
        _spec("g4dn.xlarge", "T4", "NVIDIA", 1, 16384, 4, 16384),
        _spec("g5.xlarge", "A10G", "NVIDIA", 1, 22888, 4, 16384),
        _spec("g5.2xlarge", "A10G", "NVIDIA", 1, 22888, 8, 32768),
        _spec("g5.4xlarge", "A10G", "NVIDIA", 1, 22888, 16, 65536),
        _spec("g5.12xlarge", "A10G", "NVIDIA", 4, 22888, 48, 196608),
        _spec("g5.24xlarge", "A10G", "NVIDIA", 4, 22888, 96, 393216),
        _spec("g5.48xlarge", "A10G", "NVIDIA", 8, 22888, 192, 786432),
        _spec("g6.xlarge", "L4", "NVIDIA", 1, 22888, 4, 16384),
        _spec("g6.2xlarge", "L4", "NVIDIA", 1, 22888, 8, 32768),
        _spec("g6.4xlarge", "L4", "NVIDIA", 1, 22888, 16, 65536),
        _spec("g6.12xlarge", "L4", "NVIDIA", 4, 22888, 48, 196608),
        _spec("g6.24xlarge", "L4", "NVIDIA", 4, 22888, 96, 393216),
        _spec("g6.48xlarge", "L4", "NVIDIA", 8, 22888, 192, 786432),
        _spec("g6e.xlarge", "L40S", "NVIDIA", 1, 45776, 4, 32768),
        _spec("g6e.2xlarge", "L40S", "NVIDIA", 1, 45776, 8, 65536),
        _spec("g6e.4xlarge", "L40S", "NVIDIA", 1, 45776, 16, 131072),
        _spec("g6e.12xlarge", "L40S", "NVIDIA", 4, 45776, 48, 393216),
        _spec("g6e.24xlarge", "L40S", "NVIDIA", 4, 45776, 96, 786432),
        _spec("g6e.48xlarge", "L40S", "NVIDIA", 8, 45776, 192, 1572864),
        _spec("gr6.4xlarge", "L4", "NVIDIA", 1, 22888, 16, 131072),
        # p3: https://aws.amazon.com/ec2/instance-types/p3/ (V100 16 GB; 61 and 488 GiB).
        _spec("p3.2xlarge", "V100", "NVIDIA", 1, 16384, 8, 62464),
        _spec("p3.16xlarge", "V100", "NVIDIA", 8, 16384, 64, 499712),
        _spec("p3dn.24xlarge", "V100", "NVIDIA", 8, 32768, 96, 786432),
        _spec("p4d.24xlarge", "A100", "NVIDIA", 8, 40960, 96, 1179648),
        _spec("p4de.24xlarge", "A100", "NVIDIA", 8, 81920, 96, 1179648),
        _spec("p5.48xlarge", "H100", "NVIDIA", 8, 81920, 192, 2097152),
        _spec("p5en.48xlarge", "H200", "NVIDIA", 8, 144384, 192, 2097152),
        _spec("inf2.xlarge", "Inferentia2", "AWS", 1, 32768, 4, 16384),
        _spec("inf2.48xlarge", "Inferentia2", "AWS", 12, 32768, 192, 786432),
        _spec("trn1.2xlarge", "Trainium", "AWS", 1, 32768, 8, 32768),
        _spec("trn1.32xlarge", "Trainium", "AWS", 16, 32768, 128, 524288),
        _spec("trn1n.32xlarge", "Trainium", "AWS", 16, 32768, 128, 524288),
    )
}

#: The catalog's list prices hold from this date. SkyPilot's snapshot was built between the
#: p5en launch (December 2024) and the June 2025 cut; its G-family prices still match 2026 ones.
LIST_PRICES_SINCE = datetime(2025, 1, 1, tzinfo=UTC)

_CUT_SOURCE = (
    "AWS News Blog, 2025-06-05, 'Announcing up to 45% price reduction for Amazon EC2 NVIDIA "
    "GPU-accelerated instances': On-Demand cut from June 1, 2025"
)
_CUT_EFFECTIVE = datetime(2025, 6, 1, tzinfo=UTC)

#: The June 2025 P-family on-demand price cut, by family: P4d and P4de 33%, P5 44%, P5en 25%.
#: For p5 the factor is the measured one, 98.32 -> 55.04 $/h in us-east-1 (a daily Pricing API
#: poll, amorton45/aws-gpu-price-tracker, first seen 2025-06-05); AWS's percentages are rounded,
#: so the other cut figures may differ from the real list price by a fraction of a percent.
PRICE_CUTS: dict[str, PriceCut] = {
    "p4d": PriceCut(_CUT_EFFECTIVE, 1 - 0.33, _CUT_SOURCE),
    "p4de": PriceCut(_CUT_EFFECTIVE, 1 - 0.33, _CUT_SOURCE),
    "p5": PriceCut(_CUT_EFFECTIVE, 55.04 / 98.32, _CUT_SOURCE),
    "p5en": PriceCut(_CUT_EFFECTIVE, 1 - 0.25, _CUT_SOURCE),
}


def instance_type_names() -> list[str]:
    """Every instance type of the sample market (those with an on-demand price somewhere)."""
    return sorted(ON_DEMAND_OFFERS)


def region_names() -> list[str]:
    """Every region that offers at least one sample instance type."""
    return sorted({region for by_region in ON_DEMAND_OFFERS.values() for region in by_region})


def family(instance_type: str) -> str:
    return instance_type.split(".")[0]


def on_demand_timeline(instance_type: str, region: str) -> list[tuple[datetime, float]]:
    """The list price of ``instance_type`` in ``region`` as (effective from, USD per hour),
    oldest first; empty when the type is not offered there."""
    offer = ON_DEMAND_OFFERS.get(instance_type, {}).get(region)
    if offer is None:
        return []
    price = offer[0]
    timeline = [(LIST_PRICES_SINCE, price)]
    cut = PRICE_CUTS.get(family(instance_type))
    if cut is not None:
        timeline.append((cut.effective, round(price * cut.factor, 4)))
    return timeline


def on_demand_price(instance_type: str, region: str, at: datetime) -> float:
    """The list price in effect at ``at`` (the oldest known one before the catalog's date)."""
    timeline = on_demand_timeline(instance_type, region)
    if not timeline:
        raise KeyError(f"{instance_type} is not offered in {region} in the sample catalog")
    price = timeline[0][1]
    for effective, figure in timeline:
        if effective <= at:
            price = figure
    return price


def pools(
    *, regions: Sequence[str] | None = None, instance_types: Sequence[str] | None = None
) -> list[SamplePool]:
    """The spot pools of the sample market, optionally narrowed; unknown names are refused."""
    _check_known("region", regions, set(region_names()))
    _check_known("instance type", instance_types, set(ON_DEMAND_OFFERS))
    chosen: list[SamplePool] = []
    for instance_type in sorted(ON_DEMAND_OFFERS):
        if instance_types and instance_type not in instance_types:
            continue
        for region, (_price, zone_ids) in sorted(ON_DEMAND_OFFERS[instance_type].items()):
            if regions and region not in regions:
                continue
            chosen.extend(
                SamplePool(region, zone_id, AZ_NAMES[zone_id], instance_type)
                for zone_id in zone_ids
            )
    return chosen


def _check_known(what: str, names: Sequence[str] | None, known: set[str]) -> None:
    for name in names or ():
        if name not in known:
            raise InputError(
                f"unknown {what} {name!r} for the sample market; choose from: "
                + ", ".join(sorted(known))
            )
