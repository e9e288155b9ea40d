"""SkyPilot spot availability traces as pool observations (the evidence of :mod:`oracle.risk`).

The format (github.com/skypilot-org/spot-traces, "Can't Be Late", NSDI'24) is
``{"metadata": {"gap_seconds": N}, "data": [count, ...]}``: one probe every N seconds, each the
number of spot instances that could be had then. The file holds neither its pool nor its start,
so they come from where the traces repository puts them:
``availability/<k>-node/aws-MM-DD-YYYY/<AZ name>_<gpu>_<gpus per instance>.json``; the start is
that date at 00:00 UTC unless ``--observed-at`` gives it. Instance types, as the repository's
README names them: v100 x1 p3.2xlarge, v100 x8 p3.16xlarge, k80 x1 p2.xlarge (the README's
"p2.2xlarge" does not exist), k80 x8 p2.8xlarge (8 K80 GPUs).

A probe finds capacity when its count is above 0 (as WORLD.md counts). What is stored, per pool:

- ``launch`` rows: probes that found capacity, in chunks of at most an hour of one available
  run, each stamped at its last probe and carrying the chunk's time as ``at_risk_s`` (capacity
  held that long); stamping at the end keeps a reader ``as of t`` from seeing later probes;
- ``interruption`` rows: each fall from available to 0 (a loss of held capacity), at the first
  empty probe;
- ``capacity-error`` rows: probes that found none, chunked and stamped the same way.

Preemption traces share the format but not the meaning; they are refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from oracle.importers.base import Batch, FileContext
from oracle.importers.zones import ZoneError
from oracle.models import PoolObservationModel

#: (gpu, GPUs per instance) in the traces' file names -> the EC2 instance type.
INSTANCE_TYPES = {
    ("v100", 1): "p3.2xlarge",
    ("v100", 8): "p3.16xlarge",
    ("k80", 1): "p2.xlarge",
    ("k80", 8): "p2.8xlarge",
}
#: Longest stretch of one run that one row summarises (its staleness for a reader as of t).
CHUNK_S = 3600.0

_FOLDER = re.compile(r"^aws-(?P<month>\d\d)-(?P<day>\d\d)-(?P<year>\d{4})$")
_NAME = re.compile(
    r"^(?P<az>[a-z]{2}(?:-[a-z]+)+-\d+[a-z])_(?P<gpu>[a-z0-9]+)_(?P<count>\d+)\.json$"
)
_LAYOUT = (
    "name the file as the SkyPilot spot traces do: "
    "availability/1-node/aws-MM-DD-YYYY/<AZ name>_<gpu>_<count>.json, e.g. "
    "availability/1-node/aws-02-15-2023/us-east-1a_v100_1.json"
)


def is_trace(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("metadata"), dict)
        and ("data" in payload)
    )


def load_availability_trace(context: FileContext, payload: Any) -> Batch:
    """The observations one availability trace file gives (see the module docstring)."""
    path = context.path
    if "preemption" in path.parts:
        context.fail(
            None,
            "this is a spot preemption trace, not price data or an availability trace; "
            "replay it with `scheduler backtest` instead",
        )
    name = _NAME.match(path.name)
    if name is None:
        context.fail(None, f"cannot tell the pool from the file name; {_LAYOUT}")
    instance_type = INSTANCE_TYPES.get((name["gpu"], int(name["count"])))
    if instance_type is None:
        known = ", ".join(f"{gpu}_{count}" for gpu, count in INSTANCE_TYPES)
        context.fail(None, f"unknown GPU {name['gpu']}_{name['count']}; known: {known}")
    try:
        zone = context.zones.resolve(name["az"])
    except ZoneError as error:
        context.fail(None, str(error))
    start = context.observed_at or _start_from_folder(context)
    gap_s, counts = _probes(context, payload)

    batch = context.batch()
    batch.rows_read = len(counts)
    batch.expect(PoolObservationModel)
    batch.regions.add(zone.region)
    pool = {
        "region": zone.region,
        "zone": zone.zone,
        "availability_zone": zone.availability_zone,
        "availability_zone_id": zone.availability_zone_id,
        "instance_type": instance_type,
        "market": "spot",
        "source": "file",
        "source_detail": context.source_detail,
    }
    losses = 0
    for first, end, available in _runs(counts):
        if available and end < len(counts):
            losses += 1
            at = start + timedelta(seconds=end * gap_s)
            loss = {"kind": "interruption", "count": 1, "at_risk_s": 0.0, "observed_at": at}
            batch.add(PoolObservationModel, {**pool, **loss})
        kind = "launch" if available else "capacity-error"
        for chunk_first, chunk_end in _chunks(first, end, max(1, int(CHUNK_S // gap_s))):
            probes = chunk_end - chunk_first
            batch.add(
                PoolObservationModel,
                {
                    **pool,
                    "kind": kind,
                    "count": probes,
                    "at_risk_s": probes * gap_s if available else 0.0,
                    "observed_at": start + timedelta(seconds=(chunk_end - 1) * gap_s),
                },
            )
    days = len(counts) * gap_s / 86_400.0
    share = sum(1 for count in counts if count > 0) / len(counts) if counts else 0.0
    batch.notes.append(
        f"{instance_type} in {name['az']} from {start:%Y-%m-%d %H:%M}Z over {days:.1f} days "
        f"(probe every {gap_s:g} s): available {100 * share:.1f}% of probes, {losses} losses "
        "(pool and start read from the path)"
    )
    return batch


# --- helpers ------------------------------------------------------------------------------


def _start_from_folder(context: FileContext) -> datetime:
    folder = _FOLDER.match(context.path.parent.name)
    if folder is None:
        context.fail(
            None,
            f"cannot tell when the trace starts: give --observed-at, or {_LAYOUT}",
        )
    try:
        return datetime(int(folder["year"]), int(folder["month"]), int(folder["day"]), tzinfo=UTC)
    except ValueError:
        context.fail(None, f"folder {context.path.parent.name!r} is not a valid date; {_LAYOUT}")


def _probes(context: FileContext, payload: Any) -> tuple[float, list[int]]:
    gap = payload["metadata"].get("gap_seconds")
    if isinstance(gap, bool) or not isinstance(gap, int | float) or not gap > 0:
        context.fail("metadata.gap_seconds", f"{gap!r} is not a positive number of seconds")
    data = payload["data"]
    if not isinstance(data, list):
        context.fail("data", "expected a list of instance counts, one per probe")
    for index, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            context.fail(
                f"data[{index}]", f"{value!r} is not a count of instances (a whole number >= 0)"
            )
    return float(gap), data


def _runs(counts: list[int]) -> list[tuple[int, int, bool]]:
    """Maximal runs ``[first, end)`` of probes that all found capacity, or all found none."""
    runs: list[tuple[int, int, bool]] = []
    first = 0
    for index in range(1, len(counts) + 1):
        if index == len(counts) or (counts[index] > 0) != (counts[first] > 0):
            runs.append((first, index, counts[first] > 0))
            first = index
    return runs


def _chunks(first: int, end: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, end)) for start in range(first, end, size)]
