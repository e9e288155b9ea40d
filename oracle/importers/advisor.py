"""The Spot Instance Advisor: interruption frequency band and savings per (region, type, OS).

The feed (spot-advisor-data.json) carries no date, so its facts are observed at the snapshot
time: ``--observed-at``, else the file's modification time. Only GPU and accelerator instance
types are kept (the planner uses nothing else; the feed holds ~25,000 entries, of which ~1,400
are accelerated), the same selection as the derived CSV ``spot_advisor_gpu.csv``.
"""

from __future__ import annotations

import re
from typing import Any

from oracle.importers.base import (
    BadValue,
    Batch,
    FileContext,
    Table,
    check_instance_type,
    check_text,
    parse_int,
    parse_number,
)
from oracle.importers.zones import check_region
from oracle.models import InterruptionFrequencyModel

# GPU and accelerator families: g3..g7e, gr6, p2..p6*, inf1/inf2, trn1/trn2, dl1/dl2q.
_ACCELERATED_FAMILY = re.compile(r"^(g\d|gr\d|p\d|inf\d|trn\d|dl\d)")


def is_accelerated(instance_type: str) -> bool:
    return _ACCELERATED_FAMILY.match(instance_type) is not None


def load_advisor_json(context: FileContext, payload: dict[str, Any]) -> Batch:
    batch = context.batch()
    batch.expect(InterruptionFrequencyModel)
    observed_at = context.snapshot_time(batch)
    bands = _bands(context, payload.get("ranges"))
    advisor = payload["spot_advisor"]
    if not isinstance(advisor, dict) or not advisor:
        context.fail("spot_advisor", "holds no regions; use a complete Spot Advisor feed")
    skipped = 0
    for region, systems in advisor.items():
        with context.at(f"spot_advisor.{region}"):
            check_region(region)
            if not isinstance(systems, dict):
                raise BadValue("expected an object of operating systems")
        for system, entries in systems.items():
            for instance_type, entry in entries.items():
                batch.rows_read += 1
                if not is_accelerated(instance_type):
                    skipped += 1
                    continue
                where = f"spot_advisor.{region}.{system}.{instance_type}"
                with context.at(where):
                    if not isinstance(entry, dict) or "r" not in entry or "s" not in entry:
                        raise BadValue('expected {"s": savings %, "r": band index}')
                    index = parse_int(entry["r"], name="band index")
                    if index not in bands:
                        raise BadValue(f"band index {index} is not in ranges; fix the index")
                    label, max_pct = bands[index]
                    batch.add(
                        InterruptionFrequencyModel,
                        _row(
                            context,
                            observed_at,
                            region=region,
                            instance_type=check_instance_type(instance_type),
                            operating_system=system,
                            band=(index, label, max_pct),
                            savings=parse_number(entry["s"], name="savings %"),
                        ),
                    )
                batch.regions.add(region)
    batch.notes.append(f"{skipped} entries of types without GPUs or accelerators skipped")
    return batch


def load_advisor_csv(context: FileContext, table: Table) -> Batch:
    """The derived CSV: region, os, instance_type, savings_vs_ondemand_pct,
    interruption_range_index, interruption_range_label, interruption_range_max_pct."""
    batch = context.batch()
    batch.expect(InterruptionFrequencyModel)
    observed_at = context.snapshot_time(batch)
    for line, record in table.records(context):
        batch.rows_read += 1
        with context.at(line):
            region = check_region(record["region"])
            band = (
                parse_int(record["interruption_range_index"], name="interruption_range_index"),
                record["interruption_range_label"],
                parse_number(
                    record["interruption_range_max_pct"], name="interruption_range_max_pct"
                ),
            )
            batch.add(
                InterruptionFrequencyModel,
                _row(
                    context,
                    observed_at,
                    region=region,
                    instance_type=check_instance_type(record["instance_type"]),
                    operating_system=record["os"] or "Linux",
                    band=band,
                    savings=parse_number(
                        record["savings_vs_ondemand_pct"], name="savings_vs_ondemand_pct"
                    ),
                ),
            )
        batch.regions.add(region)
    return batch


def _bands(context: FileContext, ranges: Any) -> dict[int, tuple[str, float]]:
    bands: dict[int, tuple[str, float]] = {}
    if not isinstance(ranges, list) or not ranges:
        context.fail("ranges", "missing or empty; the feed must list its interruption bands")
    for position, item in enumerate(ranges):
        with context.at(f"ranges[{position}]"):
            if not isinstance(item, dict):
                raise BadValue('expected {"index", "label", "max"}')
            index = parse_int(item.get("index"), name="index")
            bands[index] = (str(item.get("label", "")), parse_number(item.get("max"), name="max"))
    return bands


def _row(
    context: FileContext,
    observed_at: Any,
    *,
    region: str,
    instance_type: str,
    operating_system: str,
    band: tuple[int, str, float],
    savings: float,
) -> dict[str, Any]:
    index, label, max_pct = band
    label = check_text(label, name="band label", max_chars=16)
    operating_system = check_text(operating_system, name="operating system", max_chars=16)
    return {
        "region": region,
        "instance_type": instance_type,
        "operating_system": operating_system,
        "band_index": index,
        "band_label": label,
        "band_max_pct": max_pct,
        "savings_pct": savings,
        "source": "file",
        "source_detail": context.source_detail,
        "observed_at": observed_at,
    }
