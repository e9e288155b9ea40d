"""Which format a file is in, told from its content (never from its name).

JSON files are told apart by their top-level keys, delimited files (comma or tab) by their
header. SkyPilot spot availability traces are told by their keys (their pool comes from their
path); vLLM benchmark results are recognised too, and refused with the command that handles
them.
"""

from __future__ import annotations

import csv
import json
import re
import stat
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracle.errors import InputError
from oracle.importers import advisor, ec2_catalog, on_demand, skypilot, spot_history, traces
from oracle.importers.base import FileContext, Loader, Table, bounded_lines
from oracle.importers.zones import ZoneDirectory


@dataclass(frozen=True)
class FileFormat:
    """A recognised file format: what it fills and how it is loaded."""

    name: str
    #: What the file holds, as reported per file (and recorded as the ingest run's kind).
    kind: str
    #: Import order within one command: AZ mappings, then specs and offerings, then prices,
    #: so that later files resolve AZ names through the mapping imported with them.
    order: int
    load: Loader


AZ_MAPPING = FileFormat(
    "aws-cli-describe-availability-zones", "availability_zones", 0,
    ec2_catalog.load_availability_zones_json,
)  # fmt: skip
INSTANCE_TYPES_JSON = FileFormat(
    "ec2-instance-types-json", "instance_types", 1, ec2_catalog.load_instance_types_json
)
INSTANCE_TYPES_CSV = FileFormat(
    "ec2-instance-types-csv", "instance_types", 1, ec2_catalog.load_instance_types_csv
)
OFFERINGS_CSV = FileFormat("ec2-offerings-csv", "offerings", 2, ec2_catalog.load_offerings_csv)
SPOT_HISTORY_JSON = FileFormat(
    "aws-cli-spot-price-history-json", "spot_price_history", 3, spot_history.load_aws_cli_json
)
SPOT_HISTORY_CSV = FileFormat(
    "spot-price-history-csv", "spot_price_history", 3, spot_history.load_csv
)
ADVISOR_JSON = FileFormat("spot-advisor-json", "spot_advisor", 3, advisor.load_advisor_json)
ADVISOR_CSV = FileFormat("spot-advisor-csv", "spot_advisor", 3, advisor.load_advisor_csv)
SKYPILOT_CATALOG = FileFormat(
    "skypilot-aws-catalog-csv", "skypilot_catalog", 3, skypilot.load_catalog
)
AVAILABILITY_TRACE = FileFormat(
    "skypilot-spot-availability-trace", "pool_observations", 3, traces.load_availability_trace
)
ON_DEMAND_HISTORY = FileFormat(
    "on-demand-price-history-csv", "on_demand_history", 3, on_demand.load_history
)

RECOGNISED = (
    "the AWS CLI's describe-spot-price-history JSON, a spot price history CSV/TSV "
    "(timestamp, availability_zone or az_id, instance_type, product_description, spot_price), "
    "the Spot Advisor JSON or its CSV, the SkyPilot AWS catalog CSV, an on-demand price history "
    "CSV (timestamp, instance, price_usd), EC2 instance type specs (JSON/CSV), offerings CSV "
    "(region, location, instance_type), describe-availability-zones JSON or a SkyPilot spot "
    "availability trace"
)
BENCHMARK_MESSAGE = (
    "this is a vLLM benchmark result, not price data; load it with `scheduler bench import` instead"
)


@dataclass(frozen=True)
class Detected:
    path: Path
    format: FileFormat
    payload: Any


def detect(path: Path) -> Detected:
    """Tell the format of ``path`` from its start (a delimited file is not read further: its
    rows are streamed when imported); raise InputError when it is not a file to import."""
    _check_regular_file(path)
    header = _first_line(path)
    if header is None:
        raise InputError(f"{path}:1: the file is empty; give a file with price data")
    line_number, first_line = header
    if first_line.lstrip()[0] in "{[":
        payload = _parse_json(path, _read_json_text(path))
        return Detected(path, _json_format(path, payload), payload)
    table = _table(path, first_line, line_number)
    return Detected(path, _table_format(path, table), table)


#: JSON files are parsed whole: about ten times their size in memory. Every JSON format here
#: (the AWS CLI's pages, the Advisor feed, catalog snapshots) is a few megabytes; a larger
#: history belongs in a CSV/TSV, which is streamed.
MAX_JSON_BYTES = 32 << 20


def _check_regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it (opening a FIFO blocks)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror}); check the path") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory; name the files in it")
    if not stat.S_ISREG(mode):
        raise InputError(
            f"{path}: not a regular file (a FIFO, socket or device); save the data to a file "
            "and import that"
        )


def _first_line(path: Path) -> tuple[int, str] | None:
    """The first line that is not blank, and its number (None: the file is blank)."""
    try:
        with closing(bounded_lines(path, FileContext(path, ZoneDirectory()))) as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    return number, line
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror}); check the path") from None
    return None


def _read_json_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise InputError(
            f"{path}: a JSON file of {size / 2**20:,.0f} MiB; JSON is imported up to "
            f"{MAX_JSON_BYTES >> 20} MiB: split it, or convert a price history to CSV/TSV "
            "(streamed at any size)"
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 text (a binary or compressed file?); "
            "give a JSON, CSV or TSV file"
        ) from None


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}:{error.lineno}: not valid JSON ({error.msg}); fix the file"
        ) from None
    except RecursionError:
        raise InputError(
            f"{path}: JSON nested too deeply to be a price or catalog file; fix the file"
        ) from None


def _json_format(path: Path, payload: Any) -> FileFormat:
    checks: list[tuple[Callable[[Any], bool], FileFormat | str]] = [
        (lambda p: _is_dict_with(p, "SpotPriceHistory", list), SPOT_HISTORY_JSON),
        (lambda p: _is_record_list(p, "SpotPrice"), SPOT_HISTORY_JSON),
        (lambda p: _is_dict_with(p, "spot_advisor", dict) and "ranges" in p, ADVISOR_JSON),
        (lambda p: _is_dict_with(p, "AvailabilityZones", list), AZ_MAPPING),
        (lambda p: _is_dict_with(p, "InstanceTypes", list), INSTANCE_TYPES_JSON),
        (lambda p: _is_record_list(p, "InstanceType"), INSTANCE_TYPES_JSON),
        (_is_instance_type_map, INSTANCE_TYPES_JSON),
        (traces.is_trace, AVAILABILITY_TRACE),
        (_is_benchmark, BENCHMARK_MESSAGE),
    ]
    for check, answer in checks:
        if check(payload):
            if isinstance(answer, str):
                raise InputError(f"{path}: {answer}")
            return answer
    if isinstance(payload, list) and not payload:
        raise InputError(f"{path}:1: the JSON list is empty; give a file with price data")
    raise InputError(f"{path}:1: JSON of an unknown shape; expected {RECOGNISED}")


def _table(path: Path, first_line: str, line_number: int) -> Table:
    delimiter = "\t" if "\t" in first_line else ","
    try:
        header = next(csv.reader([first_line], delimiter=delimiter))
    except csv.Error as error:
        raise InputError(
            f"{path}:{line_number}: not a well-formed header ({error}); fix the file"
        ) from None
    return Table(path, delimiter, [_snake(name) for name in header], header_line=line_number)


def _table_format(path: Path, table: Table) -> FileFormat:
    columns = set(table.columns)
    zone = columns & set(spot_history.ZONE_COLUMNS)
    if {"timestamp", "instance_type"} <= columns and zone and columns & {"spot_price", "price"}:
        return SPOT_HISTORY_CSV
    if {"region", "os", "instance_type", "interruption_range_index"} <= columns and {
        "savings_vs_ondemand_pct",
        "interruption_range_label",
        "interruption_range_max_pct",
    } <= columns:
        return ADVISOR_CSV
    if {"instance_type", "price", "spot_price", "region", "availability_zone"} <= columns:
        return SKYPILOT_CATALOG
    if (
        "timestamp" in columns
        and columns & set(on_demand.TYPE_COLUMNS)
        and columns & set(on_demand.PRICE_COLUMNS)
    ):
        return ON_DEMAND_HISTORY
    specs = {"instance_type", "accelerator_count", "accelerator_memory_mib_each", "vcpus"}
    if specs | {"accelerator_name", "memory_mib"} <= columns:
        return INSTANCE_TYPES_CSV
    if {"region", "location", "instance_type"} <= columns:
        return OFFERINGS_CSV
    if {"backend", "output_throughput"} <= columns or {"model_id", "mean_ttft"} <= columns:
        raise InputError(f"{path}: {BENCHMARK_MESSAGE}")
    shown = ", ".join(name[:40] for name in table.columns[:8])
    raise InputError(
        f"{path}:{table.header_line}: unknown columns ({shown}); expected {RECOGNISED}"
    )


def _snake(name: str) -> str:
    """Column names compared in snake case: ``SpotPrice`` and ``spot_price`` are one column."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _is_dict_with(payload: Any, key: str, kind: type) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get(key), kind)


def _is_record_list(payload: Any, key: str) -> bool:
    return (
        isinstance(payload, list)
        and bool(payload)
        and isinstance(payload[0], dict)
        and (key in payload[0])
    )


def _is_instance_type_map(payload: Any) -> bool:
    if not isinstance(payload, dict) or not payload:
        return False
    first = next(iter(payload.values()))
    return isinstance(first, dict) and "InstanceType" in first and "VCpuInfo" in first


def _is_benchmark(payload: Any) -> bool:
    records = payload if isinstance(payload, list) else [payload]
    first = records[0] if records else None
    return isinstance(first, dict) and (
        {"backend", "output_throughput"} <= first.keys()
        or {"model_id", "request_throughput"} <= first.keys()
    )
