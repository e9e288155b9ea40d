"""Real spot availability traces: reading them, and the pools they drive.

The traces are SkyPilot's (``skypilot-org/spot-traces``, used in "Can't Be Late", NSDI'24):
one JSON file per AZ and instance shape, ``{"metadata": {"gap_seconds": 195}, "data": [0, 1,
...]}``, each value the number of instances that could be had at a probe (> 0: the pool had
capacity). A trace set is a folder of such files named ``<AZ name>_<gpu>_<count>.json``.

Mapping (``--trace-set aws-02-15-2023`` reads ``<trace_dir>/aws-02-15-2023``): the file's AZ
name (``us-east-1a``) is matched against the oracle's AZ names, and its GPU and count name the
instance type: ``v100_1`` p3.2xlarge, ``v100_8`` p3.16xlarge, ``k80_1`` p2.xlarge, ``k80_8``
p2.8xlarge (the shapes SkyPilot probed). AZ names differ between AWS accounts; the traces were
taken in one account, and the oracle's names are those of the account that synced it, so the
mapping is by name, as the traces give no AZ IDs. Explicit ``backtest.traces`` entries
(``"AZ/instance type" = FILE``) add to or override a set's.

A trace's first probe is aligned with the window's start; a window longer than the trace
replays it from its start again (the 2023 set covers 45.5 days, a 90-day window sees it twice).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from oracle.errors import InputError

#: ``<gpu>_<count>`` of SkyPilot's file names -> the EC2 instance type probed.
SHAPES = {
    "v100_1": "p3.2xlarge",
    "v100_8": "p3.16xlarge",
    "k80_1": "p2.xlarge",
    "k80_8": "p2.8xlarge",
}
_FILE_NAME = re.compile(r"^(?P<zone>[a-z]{2}(?:-[a-z]+)+-\d[a-z])_(?P<shape>[a-z0-9]+_\d+)\.json$")


@dataclass(frozen=True)
class Trace:
    path: Path
    gap_s: float
    #: True where the probe found capacity.
    available: NDArray[np.bool_]

    def down_intervals(
        self, start_s: float, end_s: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(starts, ends)`` of the unavailable runs, the first probe at ``start_s``, the trace
        repeated until ``end_s``."""
        span_s = self.available.size * self.gap_s
        repeats = max(1, int(np.ceil((end_s - start_s) / span_s)))
        series = np.tile(self.available, repeats)
        edges = np.diff(np.r_[1, series.astype(np.int8), 1])
        starts = np.flatnonzero(edges == -1) * self.gap_s + start_s
        ends = np.flatnonzero(edges == 1) * self.gap_s + start_s
        keep = starts < end_s
        return starts[keep].astype(np.float64), np.minimum(ends[keep], end_s).astype(np.float64)


def trace_set(directory: Path) -> dict[str, Path]:
    """The files of a trace set keyed ``"AZ name/instance type"``."""
    if not directory.is_dir():
        raise InputError(
            f"--trace-set: no folder {directory}; pass a folder of SkyPilot spot traces "
            "(e.g. aws-02-15-2023 under backtest.trace_dir)"
        )
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        match = _FILE_NAME.match(path.name)
        if match is None or match["shape"] not in SHAPES:
            continue
        found[f"{match['zone']}/{SHAPES[match['shape']]}"] = path
    if not found:
        raise InputError(
            f"--trace-set: {directory} holds no trace named <AZ>_<gpu>_<count>.json with a "
            f"known shape ({', '.join(SHAPES)})"
        )
    return found


def load_trace(path: Path) -> Trace:
    """Read one trace file; a malformed one is refused as ``FILE:LINE: what is wrong``."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise InputError(f"{path}: cannot read the trace ({error.strerror})") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}:1: expected an object with metadata.gap_seconds and data")
    metadata = payload.get("metadata")
    gap = metadata.get("gap_seconds") if isinstance(metadata, dict) else None
    if isinstance(gap, bool) or not isinstance(gap, (int, float)) or gap <= 0:
        raise InputError(
            f"{path}:{_line_of(text, 'gap_seconds')}: metadata.gap_seconds must be a positive "
            f"number of seconds (got {gap!r})"
        )
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}:{_line_of(text, 'data')}: data must be a non-empty list")
    for position, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(
                f"{path}:{_line_of_item(text, position)}: data[{position}] is {value!r}; each "
                "probe must be a count of instances (a number >= 0)"
            )
    return Trace(Path(path), float(gap), np.asarray(data, dtype=np.float64) > 0)


def pools_of_traces(
    pools: Mapping[int, tuple[str, str, str | None, str | None, str]],
    traces: Mapping[str, Path],
) -> dict[int, Path]:
    """Pool index -> trace file, for the pools the traces cover. ``pools`` maps an index to
    (region, zone, AZ name, AZ ID, instance type)."""
    covered: dict[int, Path] = {}
    for key, path in traces.items():
        zone, _, instance_type = key.partition("/")
        for index, (_, pool_zone, name, zone_id, pool_type) in pools.items():
            if pool_type == instance_type and zone in (pool_zone, name, zone_id):
                covered[index] = path
    return covered


def _line_of(text: str, key: str) -> int:
    at = text.find(f'"{key}"')
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def _line_of_item(text: str, position: int) -> int:
    """The line of ``data[position]``: the items are counted by their separators after the
    ``data`` key (the values are numbers, so commas separate them)."""
    at = text.find('"data"')
    at = text.find("[", at) + 1
    for _ in range(position):
        at = text.find(",", at) + 1
        if at == 0:
            return _line_of(text, "data")
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return text.count("\n", 0, at) + 1
