"""The oracle's facts store as SQLAlchemy Core tables: the one definition of its schema.

Every fact row carries ``source`` (one of :data:`SOURCES`) and ``observed_at`` (aware UTC):
where the fact came from and when it was true. Prices are in US dollars per instance-hour.

Spot pools are keyed by ``zone``: the AZ ID (``use1-az4``) when known, else the AZ name
(``us-east-1a``), since AZ names map to different zones in different accounts. Both original
columns are kept beside it.

Readers that only query (a plan, above all) use these tables and need no ORM: importing
``sqlalchemy.orm`` and building the mapped classes costs a command about 0.1 s.
:mod:`oracle.models` maps its classes onto these tables for the code that writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: Where a fact came from.
SOURCES = ("aws", "file", "sample", "measured", "imported", "reference", "estimated")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _provenance() -> tuple[Column[str], Column[str], Column[datetime]]:
    """``source``, ``source_detail`` and ``observed_at``: the last columns of a fact table."""
    return (
        Column("source", String(16), nullable=False),
        Column("source_detail", String(512), nullable=False, default=""),
        Column("observed_at", UTCDateTime(), nullable=False),
    )


def _big_id() -> Column[int]:
    """The id of a table that grows with history (64-bit, except on SQLite)."""
    return Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


instance_types = Table(
    "instance_types",
    metadata,
    Column("instance_type", String(64), primary_key=True),
    Column("family", String(32), nullable=False),
    Column("accelerator_name", String(64), nullable=False),
    Column("accelerator_manufacturer", String(32), nullable=False, default=""),
    Column("accelerator_count", Integer, nullable=False),
    Column("accelerator_memory_mib_each", Integer, nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mib", Integer, nullable=False),
    Column("architecture", String(16), nullable=False, default="x86_64"),
    *_provenance(),
)

#: AZ name to AZ ID, as one account sees it.
availability_zones = Table(
    "availability_zones",
    metadata,
    Column("zone_id", String(32), primary_key=True),
    Column("zone_name", String(32), nullable=False, index=True),
    Column("region", String(32), nullable=False, index=True),
    *_provenance(),
)

#: An instance type offered in an availability zone.
offerings = Table(
    "offerings",
    metadata,
    _id(),
    Column("region", String(32), nullable=False),
    Column("zone", String(32), nullable=False),
    Column("availability_zone", String(32)),
    Column("availability_zone_id", String(32)),
    Column("instance_type", String(64), nullable=False, index=True),
    *_provenance(),
    UniqueConstraint("region", "zone", "instance_type"),
)

#: One DescribeSpotPriceHistory change record: the price from ``timestamp`` until the next.
spot_prices = Table(
    "spot_prices",
    metadata,
    _big_id(),
    Column("region", String(32), nullable=False),
    Column("zone", String(32), nullable=False),
    Column("availability_zone", String(32)),
    Column("availability_zone_id", String(32)),
    Column("instance_type", String(64), nullable=False),
    Column("product_description", String(64), nullable=False),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("price_usd_per_hour", Double, nullable=False),
    Column("ingest_run_id", ForeignKey("ingest_runs.id")),
    *_provenance(),
    UniqueConstraint("region", "zone", "instance_type", "product_description", "timestamp"),
    Index("ix_spot_prices_pool_time", "instance_type", "region", "zone", "timestamp"),
)

on_demand_prices = Table(
    "on_demand_prices",
    metadata,
    _id(),
    Column("region", String(32), nullable=False),
    Column("instance_type", String(64), nullable=False, index=True),
    Column("operating_system", String(32), nullable=False, default="Linux"),
    Column("effective_date", UTCDateTime(), nullable=False),
    Column("price_usd_per_hour", Double, nullable=False),
    *_provenance(),
    UniqueConstraint("region", "instance_type", "operating_system", "effective_date"),
)

#: A GetSpotPlacementScores answer; ``scope`` is the AZ ID, or ``region`` for region level;
#: ``instance_types``: the instance types asked about, sorted and comma-joined.
placement_scores = Table(
    "placement_scores",
    metadata,
    _id(),
    Column("region", String(32), nullable=False),
    Column("scope", String(32), nullable=False),
    Column("availability_zone_id", String(32)),
    Column("instance_types", Text, nullable=False),
    Column("target_capacity", Integer, nullable=False),
    Column("score", Integer, nullable=False),
    *_provenance(),
    UniqueConstraint("observed_at", "region", "scope", "instance_types", "target_capacity"),
)

#: A Spot Instance Advisor entry: interruption band and savings against on-demand.
interruption_frequencies = Table(
    "interruption_frequencies",
    metadata,
    _id(),
    Column("region", String(32), nullable=False),
    Column("instance_type", String(64), nullable=False, index=True),
    Column("operating_system", String(16), nullable=False, default="Linux"),
    Column("band_index", Integer, nullable=False),
    Column("band_label", String(16), nullable=False),
    Column("band_max_pct", Double, nullable=False),
    Column("savings_pct", Double, nullable=False),
    *_provenance(),
    UniqueConstraint("observed_at", "region", "instance_type", "operating_system"),
)

#: An EC2 vCPU quota (L-3819A6DF, L-7212CCBC, L-DB2E81BA, L-417A185B) in a region.
service_quotas = Table(
    "service_quotas",
    metadata,
    _id(),
    Column("region", String(32), nullable=False),
    Column("quota_code", String(16), nullable=False),
    Column("quota_name", String(128), nullable=False),
    Column("value_vcpus", Double, nullable=False),
    *_provenance(),
    UniqueConstraint("observed_at", "region", "quota_code"),
)

#: A pool marked unavailable (e.g. InsufficientInstanceCapacity) until ``expires_at``.
capacity_errors = Table(
    "capacity_errors",
    metadata,
    _id(),
    Column("region", String(32), nullable=False),
    Column("zone", String(32), nullable=False),
    Column("instance_type", String(64), nullable=False),
    Column("market", String(16), nullable=False),
    Column("error_code", String(64), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    *_provenance(),
)

#: A realised spot interruption (or rebalance recommendation) in a pool.
interruption_events = Table(
    "interruption_events",
    metadata,
    _id(),
    Column("region", String(32), nullable=False),
    Column("zone", String(32), nullable=False),
    Column("instance_type", String(64), nullable=False),
    Column("instance_id", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    *_provenance(),
)

#: What was seen of a pool's risk: ``count`` interruption notices, rebalance signals, capacity
#: errors (failed launches, empty probes) or successful launches (probes that found capacity),
#: at ``observed_at``; ``at_risk_s`` is the time instances were held in the pool that the row
#: accounts for. Read by :mod:`oracle.risk` (see there for the kinds).
pool_observations = Table(
    "pool_observations",
    metadata,
    _big_id(),
    Column("region", String(32), nullable=False),
    Column("zone", String(32), nullable=False),
    Column("availability_zone", String(32)),
    Column("availability_zone_id", String(32)),
    Column("instance_type", String(64), nullable=False),
    Column("market", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("count", Integer, nullable=False, default=1),
    Column("at_risk_s", Double, nullable=False, default=0.0),
    *_provenance(),
    # One event is stored once: a re-imported trace or a redelivered notice adds nothing.
    UniqueConstraint(
        "region", "zone", "instance_type", "market", "kind", "observed_at", "source_detail"
    ),
    Index("ix_pool_observations_pool_time", "instance_type", "region", "zone", "observed_at"),
)

#: One ingest of one source (and region), successful or not.
ingest_runs = Table(
    "ingest_runs",
    metadata,
    _id(),
    Column("source", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("region", String(32)),
    Column("detail", String(512), nullable=False, default=""),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("duration_s", Double, nullable=False, default=0.0),
    Column("rows", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("error", Text),
)

#: A goodput figure for (model, instance type): measured, imported, reference or estimated.
#: ``bucket``: the (input length x output length) bucket of the workload this goodput is for,
#: e.g. ``in256-1024.out0-128``; empty for a figure over the whole workload (one bucket).
benchmark_runs = Table(
    "benchmark_runs",
    metadata,
    _id(),
    Column("model", String(256), nullable=False),
    Column("instance_type", String(64), nullable=False),
    Column("gpu_count", Integer, nullable=False, default=1),
    Column("tensor_parallel", Integer, nullable=False, default=1),
    Column("engine", String(32), nullable=False, default="vllm"),
    Column("engine_version", String(64), nullable=False, default=""),
    Column("workload_id", String(64), nullable=False),
    Column("bucket", String(64), nullable=False, default="", server_default=""),
    Column("ttft_p95_ms_slo", Double, nullable=False),
    Column("tpot_p95_ms_slo", Double, nullable=False),
    Column("goodput_tokens_per_second", Double, nullable=False),
    Column("endpoint", String(512), nullable=False, default=""),
    Column("host", String(256), nullable=False, default=""),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("status", String(16), nullable=False, default="complete"),
    Column("details", JSON, nullable=False, default=dict),
    *_provenance(),
    Index("ix_benchmark_runs_model_type", "model", "instance_type"),
)

#: One sweep point of a benchmark run (at a concurrency or at a request rate).
#: ``latency_ms``: latency percentiles, {"ttft_ms_p95": ..., "tpot_ms_mean": ...,
#: "itl_ms_p99": ...}. ``steady_output_tokens_per_second``: the output tok/s over the window
#: with the whole load in flight (what goodput is made of), with the window's figures in
#: ``steady`` ({"window_s", "requests", "ttft_ms_p95", ...}); None for points stored before
#: steady-state figures existed, and imported ones.
benchmark_points = Table(
    "benchmark_points",
    metadata,
    _id(),
    Column("run_id", ForeignKey("benchmark_runs.id", ondelete="CASCADE"), nullable=False),
    Column("concurrency", Integer),
    Column("request_rate", Double),
    Column("requests", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("error_rate", Double, nullable=False, default=0.0),
    Column("passed", Boolean, nullable=False, default=False),
    Column("output_tokens_per_second", Double, nullable=False),
    Column("request_per_second", Double, nullable=False, default=0.0),
    Column("total_tokens_per_second", Double, nullable=False, default=0.0),
    Column("latency_ms", JSON, nullable=False, default=dict),
    Column("steady_output_tokens_per_second", Double),
    Column("steady", JSON),
)
