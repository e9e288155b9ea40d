"""EC2 catalog files: instance type specs, type offerings, and the AZ name-to-ID mapping.

- Instance types: the DescribeInstanceTypes entries (``{"InstanceTypes": [...]}``, a list, or
  moto's ``{type: entry}``), or moto's flattened CSV. Only types with GPUs or accelerators
  (GpuInfo, NeuronInfo, InferenceAcceleratorInfo) are kept.
- Offerings: ``region, location, instance_type`` per DescribeInstanceTypeOfferings location type
  (region, availability-zone, availability-zone-id), told apart by the location values. A
  region-level offering is stored with ``zone`` = the region name and both AZ columns NULL.
- AZ mapping: ``aws ec2 describe-availability-zones`` output (``{"AvailabilityZones": [...]}``),
  the one source of AZ name -> AZ ID (names differ per account, so it is never guessed).

None of these carries a date: their facts are observed at ``--observed-at``, else the file's
modification time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from oracle.importers.base import (
    BadValue,
    Batch,
    FileContext,
    Table,
    check_instance_type,
    check_text,
    parse_int,
    require,
)
from oracle.importers.zones import check_region, is_az_id, region_of_az_id, region_of_az_name
from oracle.models import AvailabilityZoneModel, InstanceTypeModel, OfferingModel

#: AWS-made accelerators (Trainium, Inferentia) carry no Manufacturer field in NeuronInfo.
NEURON_MANUFACTURER = "AWS"


def load_instance_types_json(context: FileContext, payload: Any) -> Batch:
    batch = context.batch()
    batch.expect(InstanceTypeModel)
    observed_at = context.snapshot_time(batch)
    skipped = 0
    for where, entry in _entries(payload):
        batch.rows_read += 1
        with context.at(where):
            if not isinstance(entry, dict):
                raise BadValue("expected a DescribeInstanceTypes entry (an object)")
            row = _spec_from_entry(entry)
        if row is None:
            skipped += 1
            continue
        batch.add(InstanceTypeModel, _provenance(context, observed_at, row))
    if skipped:
        batch.notes.append(f"{skipped} types without GPUs or accelerators skipped")
    return batch


def load_instance_types_csv(context: FileContext, table: Table) -> Batch:
    batch = context.batch()
    batch.expect(InstanceTypeModel)
    observed_at = context.snapshot_time(batch)
    skipped = 0
    for line, record in table.records(context):
        batch.rows_read += 1
        with context.at(line):
            count = parse_int(record["accelerator_count"] or 0, name="accelerator_count")
            memory_each = parse_int(
                record["accelerator_memory_mib_each"] or 0, name="accelerator_memory_mib_each"
            )
            if count == 0 and (memory_each == 0 or not record["accelerator_name"]):
                skipped += 1
                continue
            # A fractional GPU (g6f, gr6f: Count 0, a partition of one L4) is one logical GPU
            # with the partition's memory, as DescribeInstanceTypes' LogicalGpuCount says.
            count = max(count, 1)
            instance_type = check_instance_type(record["instance_type"])
            row = {
                "instance_type": instance_type,
                "family": record.get("family") or instance_type.split(".")[0],
                "accelerator_name": record["accelerator_name"],
                "accelerator_manufacturer": record.get("accelerator_manufacturer", ""),
                "accelerator_count": count,
                "accelerator_memory_mib_each": memory_each,
                "vcpus": parse_int(record["vcpus"], name="vcpus", minimum=1),
                "memory_mib": parse_int(record["memory_mib"], name="memory_mib", minimum=1),
                "architecture": (record.get("architectures") or "x86_64").split("|")[0],
            }
        batch.add(InstanceTypeModel, _provenance(context, observed_at, row))
    if skipped:
        batch.notes.append(f"{skipped} types without GPUs or accelerators skipped")
    return batch


def load_offerings_csv(context: FileContext, table: Table) -> Batch:
    batch = context.batch()
    batch.expect(OfferingModel)
    observed_at = context.snapshot_time(batch)
    for line, record in table.records(context):
        batch.rows_read += 1
        with context.at(line):
            region = check_region(record["region"])
            location = record["location"]
            if location == region:
                zone_columns: dict[str, Any] = {
                    "zone": region,
                    "availability_zone": None,
                    "availability_zone_id": None,
                }
            else:
                zone = context.zones.resolve(location, region=region)
                zone_columns = {
                    "zone": zone.zone,
                    "availability_zone": zone.availability_zone,
                    "availability_zone_id": zone.availability_zone_id,
                }
            row = {
                "region": region,
                "instance_type": check_instance_type(record["instance_type"]),
                **zone_columns,
            }
        batch.add(OfferingModel, _provenance(context, observed_at, row))
        batch.regions.add(region)
    return batch


def load_availability_zones_json(context: FileContext, payload: dict[str, Any]) -> Batch:
    """``aws ec2 describe-availability-zones`` output; also teaches the directory the mapping,
    so later files of the same import resolve AZ names to AZ IDs."""
    batch = context.batch()
    batch.expect(AvailabilityZoneModel)
    observed_at = context.snapshot_time(batch)
    for index, zone in enumerate(payload["AvailabilityZones"]):
        batch.rows_read += 1
        where = f"AvailabilityZones[{index}]"
        with context.at(where):
            if not isinstance(zone, dict):
                raise BadValue("expected an object with ZoneName and ZoneId")
            name, zone_id = str(require(zone, "ZoneName")), str(require(zone, "ZoneId"))
            region = check_region(str(zone.get("RegionName") or region_of_az_id(zone_id)))
            if region_of_az_id(zone_id) != region or (
                not is_az_id(name) and region_of_az_name(name) != region
            ):
                raise BadValue(f"{name} / {zone_id} are not both in {region}; fix the entry")
        row = {"zone_id": zone_id, "zone_name": name, "region": region}
        batch.add(AvailabilityZoneModel, _provenance(context, observed_at, row))
        context.zones.add(zone_id=zone_id, zone_name=name)
        batch.regions.add(region)
    if batch.rows_read == 0:
        context.fail("AvailabilityZones", "holds no zones; export a non-empty mapping")
    return batch


def _entries(payload: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(payload, dict) and isinstance(payload.get("InstanceTypes"), list):
        return ((f"InstanceTypes[{i}]", e) for i, e in enumerate(payload["InstanceTypes"]))
    if isinstance(payload, list):
        return ((f"[{i}]", e) for i, e in enumerate(payload))
    return ((str(key), entry) for key, entry in payload.items())


def _spec_from_entry(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The instance_types row of one DescribeInstanceTypes entry (None: no accelerator)."""
    instance_type = check_instance_type(require(entry, "InstanceType"))
    accelerator = _accelerator(entry)
    if accelerator is None:
        return None
    name, manufacturer, count, memory_mib = accelerator
    architectures = entry.get("ProcessorInfo", {}).get("SupportedArchitectures") or ["x86_64"]
    return {
        "instance_type": instance_type,
        "family": check_text(instance_type.split(".")[0], name="family", max_chars=32),
        "accelerator_name": check_text(name, name="accelerator name", max_chars=64),
        "accelerator_manufacturer": check_text(manufacturer, name="manufacturer", max_chars=32),
        "accelerator_count": count,
        "accelerator_memory_mib_each": memory_mib,
        "vcpus": parse_int(require(entry, "VCpuInfo").get("DefaultVCpus"), name="DefaultVCpus"),
        "memory_mib": parse_int(require(entry, "MemoryInfo").get("SizeInMiB"), name="SizeInMiB"),
        "architecture": check_text(architectures[0], name="architecture", max_chars=16),
    }


def _accelerator(entry: dict[str, Any]) -> tuple[str, str, int, int] | None:
    """(name, manufacturer, count, memory MiB each) of the first accelerator group."""
    groups = (
        ("GpuInfo", "Gpus", None),
        ("NeuronInfo", "NeuronDevices", NEURON_MANUFACTURER),
        ("InferenceAcceleratorInfo", "Accelerators", None),
    )
    for info_key, list_key, default_manufacturer in groups:
        devices = (entry.get(info_key) or {}).get(list_key) or []
        if devices:
            device = devices[0]
            # LogicalGpuCount: a fractional GPU (g6f) has Count 0 but one logical GPU.
            count = sum(
                max(
                    parse_int(d.get("Count", 0), name=f"{info_key} Count"),
                    parse_int(d.get("LogicalGpuCount", 0), name="LogicalGpuCount"),
                )
                for d in devices
            )
            memory = (device.get("MemoryInfo") or {}).get("SizeInMiB", 0)
            manufacturer = device.get("Manufacturer") or default_manufacturer or ""
            return str(device.get("Name", "")), manufacturer, count, parse_int(memory, name="MiB")
    return None


def _provenance(context: FileContext, observed_at: datetime, row: dict[str, Any]) -> dict[str, Any]:
    provenance = {"source": "file", "source_detail": context.source_detail}
    return {**row, **provenance, "observed_at": observed_at}
