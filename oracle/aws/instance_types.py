"""GPU and accelerator instance types (DescribeInstanceTypes) and where they are offered
(DescribeInstanceTypeOfferings by availability-zone-id and by availability-zone)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

#: Values per filter that DescribeInstanceTypes and DescribeInstanceTypeOfferings accept.
FILTER_VALUES_MAX = 200


@dataclass(frozen=True)
class InstanceTypeSpec:
    """An accelerated instance type, in the columns of ``instance_types``."""

    instance_type: str
    family: str
    accelerator_name: str
    accelerator_manufacturer: str
    accelerator_count: int
    accelerator_memory_mib_each: int
    vcpus: int
    memory_mib: int
    architecture: str

    @property
    def accelerator_memory_mib_total(self) -> int:
        return self.accelerator_count * self.accelerator_memory_mib_each


@dataclass(frozen=True)
class Offering:
    instance_type: str
    availability_zone: str | None
    availability_zone_id: str | None


def describe_accelerated_types(
    ec2: Any, *, instance_types: Sequence[str] = ()
) -> list[InstanceTypeSpec]:
    """The region's instance types with GPUs, Neuron devices or inference accelerators.

    ``instance_types`` narrows the answer (unknown names are simply absent, not an error);
    empty means every type the region has.
    """
    specs: list[InstanceTypeSpec] = []
    for page in _pages(ec2, "describe_instance_types", "instance-type", instance_types):
        for item in page.get("InstanceTypes", []):
            spec = parse_instance_type(item)
            if spec is not None:
                specs.append(spec)
    return sorted(set(specs), key=lambda spec: spec.instance_type)


def describe_offerings(
    ec2: Any, *, instance_types: Sequence[str], zone_ids: dict[str, str]
) -> list[Offering]:
    """Where each of ``instance_types`` is offered in the region.

    Asks by AZ ID and by AZ name and joins the answers through ``zone_ids`` (AZ name -> ID), so an
    offering keeps both even when one of the two answers lacks it.
    """
    if not instance_types:
        return []
    names = {zone_id: name for name, zone_id in zone_ids.items()}
    found: set[tuple[str, str]] = set()
    for location_type in ("availability-zone-id", "availability-zone"):
        pages = _pages(
            ec2,
            "describe_instance_type_offerings",
            "instance-type",
            instance_types,
            LocationType=location_type,
        )
        for page in pages:
            for item in page.get("InstanceTypeOfferings", []):
                location = item["Location"]
                zone_id = location if location_type == "availability-zone-id" else None
                zone_id = zone_id or zone_ids.get(location) or location
                found.add((item["InstanceType"], zone_id))
    offerings = []
    for instance_type, zone in sorted(found):
        known_id = zone in names
        offerings.append(
            Offering(
                instance_type=instance_type,
                availability_zone=names.get(zone) if known_id else zone,
                availability_zone_id=zone if known_id else None,
            )
        )
    return offerings


def parse_instance_type(item: dict[str, Any]) -> InstanceTypeSpec | None:
    """One DescribeInstanceTypes entry as a spec, or None when it has no accelerator."""
    name, manufacturer, count, memory_mib = _accelerator(item)
    if count <= 0:
        return None
    instance_type = item["InstanceType"]
    architectures = item.get("ProcessorInfo", {}).get("SupportedArchitectures") or ["x86_64"]
    return InstanceTypeSpec(
        instance_type=instance_type,
        family=instance_type.split(".", 1)[0],
        accelerator_name=name,
        accelerator_manufacturer=manufacturer,
        accelerator_count=count,
        accelerator_memory_mib_each=memory_mib,
        vcpus=int(item.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
        memory_mib=int(item.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        architecture=str(architectures[0]),
    )


def _accelerator(item: dict[str, Any]) -> tuple[str, str, int, int]:
    """(name, manufacturer, count, memory MiB each) of the first accelerator kind present."""
    if gpus := item.get("GpuInfo", {}).get("Gpus"):
        first = gpus[0]
        count = sum(int(gpu.get("Count", 0)) for gpu in gpus)
        return (
            first.get("Name", ""),
            first.get("Manufacturer", ""),
            count,
            int(first.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        )
    if devices := item.get("NeuronInfo", {}).get("NeuronDevices"):
        first = devices[0]
        count = sum(int(device.get("Count", 0)) for device in devices)
        return (
            first.get("Name", ""),
            "AWS",
            count,
            int(first.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        )
    info = item.get("InferenceAcceleratorInfo", {})
    if accelerators := info.get("Accelerators"):
        first = accelerators[0]
        count = sum(int(accelerator.get("Count", 0)) for accelerator in accelerators)
        memory = int(first.get("MemoryInfo", {}).get("SizeInMiB", 0))
        if not memory and count:
            memory = int(info.get("TotalInferenceMemoryInMiB", 0)) // count
        return first.get("Name", ""), first.get("Manufacturer", ""), count, memory
    return "", "", 0, 0


def _pages(
    ec2: Any, operation: str, filter_name: str, values: Sequence[str], **kwargs: Any
) -> Iterator[dict[str, Any]]:
    paginator = ec2.get_paginator(operation)
    if not values:
        yield from paginator.paginate(**kwargs)
        return
    ordered = sorted(set(values))
    for start in range(0, len(ordered), FILTER_VALUES_MAX):
        chunk = ordered[start : start + FILTER_VALUES_MAX]
        filters = [{"Name": filter_name, "Values": chunk}]
        yield from paginator.paginate(Filters=filters, **kwargs)
