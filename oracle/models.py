"""SQLAlchemy models of the oracle's facts store.

Every fact row carries ``source`` (one of :data:`SOURCES`) and ``observed_at`` (aware UTC):
where the fact came from and when it was true. Prices are in US dollars per instance-hour.

Spot pools are keyed by ``zone``: the AZ ID (``use1-az4``) when known, else the AZ name
(``us-east-1a``), since AZ names map to different zones in different accounts. Both original
columns are kept beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}  # noqa: RUF012


class ProvenanceMixin:
    source: Mapped[str] = mapped_column(String(16))
    source_detail: Mapped[str] = mapped_column(String(512), default="")
    observed_at: Mapped[datetime]


class InstanceTypeModel(ProvenanceMixin, Base):
    __tablename__ = "instance_types"

    instance_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(32))
    accelerator_name: Mapped[str] = mapped_column(String(64))
    accelerator_manufacturer: Mapped[str] = mapped_column(String(32), default="")
    accelerator_count: Mapped[int] = mapped_column(Integer)
    accelerator_memory_mib_each: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(16), default="x86_64")


class AvailabilityZoneModel(ProvenanceMixin, Base):
    """AZ name to AZ ID, as one account sees it."""

    __tablename__ = "availability_zones"

    zone_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    zone_name: Mapped[str] = mapped_column(String(32), index=True)
    region: Mapped[str] = mapped_column(String(32), index=True)


class OfferingModel(ProvenanceMixin, Base):
    """An instance type offered in an availability zone."""

    __tablename__ = "offerings"
    __table_args__ = (UniqueConstraint("region", "zone", "instance_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(32))
    availability_zone: Mapped[str | None] = mapped_column(String(32))
    availability_zone_id: Mapped[str | None] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64), index=True)


class SpotPriceModel(ProvenanceMixin, Base):
    """One DescribeSpotPriceHistory change record: the price from ``timestamp`` until the next."""

    __tablename__ = "spot_prices"
    __table_args__ = (
        UniqueConstraint("region", "zone", "instance_type", "product_description", "timestamp"),
        Index("ix_spot_prices_pool_time", "instance_type", "region", "zone", "timestamp"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    region: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(32))
    availability_zone: Mapped[str | None] = mapped_column(String(32))
    availability_zone_id: Mapped[str | None] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64))
    product_description: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime]
    price_usd_per_hour: Mapped[float] = mapped_column(Double)
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))


class OnDemandPriceModel(ProvenanceMixin, Base):
    __tablename__ = "on_demand_prices"
    __table_args__ = (
        UniqueConstraint("region", "instance_type", "operating_system", "effective_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64), index=True)
    operating_system: Mapped[str] = mapped_column(String(32), default="Linux")
    effective_date: Mapped[datetime]
    price_usd_per_hour: Mapped[float] = mapped_column(Double)


class PlacementScoreModel(ProvenanceMixin, Base):
    """A GetSpotPlacementScores answer; ``scope`` is the AZ ID, or ``region`` for region level."""

    __tablename__ = "placement_scores"
    __table_args__ = (
        UniqueConstraint("observed_at", "region", "scope", "instance_types", "target_capacity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(32))
    availability_zone_id: Mapped[str | None] = mapped_column(String(32))
    #: The instance types asked about, sorted and comma-joined.
    instance_types: Mapped[str] = mapped_column(Text)
    target_capacity: Mapped[int] = mapped_column(Integer)
    score: Mapped[int] = mapped_column(Integer)


class InterruptionFrequencyModel(ProvenanceMixin, Base):
    """A Spot Instance Advisor entry: interruption band and savings against on-demand."""

    __tablename__ = "interruption_frequencies"
    __table_args__ = (
        UniqueConstraint("observed_at", "region", "instance_type", "operating_system"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64), index=True)
    operating_system: Mapped[str] = mapped_column(String(16), default="Linux")
    band_index: Mapped[int] = mapped_column(Integer)
    band_label: Mapped[str] = mapped_column(String(16))
    band_max_pct: Mapped[float] = mapped_column(Double)
    savings_pct: Mapped[float] = mapped_column(Double)


class ServiceQuotaModel(ProvenanceMixin, Base):
    """An EC2 vCPU quota (L-3819A6DF, L-7212CCBC, L-DB2E81BA, L-417A185B) in a region."""

    __tablename__ = "service_quotas"
    __table_args__ = (UniqueConstraint("observed_at", "region", "quota_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32))
    quota_code: Mapped[str] = mapped_column(String(16))
    quota_name: Mapped[str] = mapped_column(String(128))
    value_vcpus: Mapped[float] = mapped_column(Double)


class CapacityErrorModel(ProvenanceMixin, Base):
    """A pool marked unavailable (e.g. InsufficientInstanceCapacity) until ``expires_at``."""

    __tablename__ = "capacity_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


class InterruptionEventModel(ProvenanceMixin, Base):
    """A realised spot interruption (or rebalance recommendation) in a pool."""

    __tablename__ = "interruption_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))


class PoolObservationModel(ProvenanceMixin, Base):
    """What was seen of a pool's risk: ``count`` interruption notices, rebalance signals,
    capacity errors (failed launches, empty probes) or successful launches (probes that found
    capacity), at ``observed_at``; ``at_risk_s`` is the time instances were held in the pool
    that the row accounts for. Read by :mod:`oracle.risk` (see there for the kinds)."""

    __tablename__ = "pool_observations"
    __table_args__ = (
        # One event is stored once: a re-imported trace or a redelivered notice adds nothing.
        UniqueConstraint(
            "region", "zone", "instance_type", "market", "kind", "observed_at", "source_detail"
        ),
        Index("ix_pool_observations_pool_time", "instance_type", "region", "zone", "observed_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    region: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(32))
    availability_zone: Mapped[str | None] = mapped_column(String(32))
    availability_zone_id: Mapped[str | None] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=1)
    at_risk_s: Mapped[float] = mapped_column(Double, default=0.0)


class IngestRunModel(Base):
    """One ingest of one source (and region), successful or not."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(512), default="")
    started_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Double, default=0.0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)


class BenchmarkRunModel(ProvenanceMixin, Base):
    """A goodput figure for (model, instance type): measured, imported, reference or estimated."""

    __tablename__ = "benchmark_runs"
    __table_args__ = (Index("ix_benchmark_runs_model_type", "model", "instance_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(256))
    instance_type: Mapped[str] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(Integer, default=1)
    tensor_parallel: Mapped[int] = mapped_column(Integer, default=1)
    engine: Mapped[str] = mapped_column(String(32), default="vllm")
    engine_version: Mapped[str] = mapped_column(String(64), default="")
    workload_id: Mapped[str] = mapped_column(String(64))
    #: The (input length x output length) bucket of the workload this goodput is for, e.g.
    #: ``in256-1024.out0-128``; empty for a figure over the whole workload (one bucket).
    bucket: Mapped[str] = mapped_column(String(64), default="", server_default="")
    ttft_p95_ms_slo: Mapped[float] = mapped_column(Double)
    tpot_p95_ms_slo: Mapped[float] = mapped_column(Double)
    goodput_tokens_per_second: Mapped[float] = mapped_column(Double)
    endpoint: Mapped[str] = mapped_column(String(512), default="")
    host: Mapped[str] = mapped_column(String(256), default="")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="complete")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    points: Mapped[list[BenchmarkPointModel]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="BenchmarkPointModel.id"
    )


class BenchmarkPointModel(Base):
    """One sweep point of a benchmark run (at a concurrency or at a request rate)."""

    __tablename__ = "benchmark_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("benchmark_runs.id", ondelete="CASCADE"))
    concurrency: Mapped[int | None] = mapped_column(Integer)
    request_rate: Mapped[float | None] = mapped_column(Double)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    error_rate: Mapped[float] = mapped_column(Double, default=0.0)
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    output_tokens_per_second: Mapped[float] = mapped_column(Double)
    request_per_second: Mapped[float] = mapped_column(Double, default=0.0)
    total_tokens_per_second: Mapped[float] = mapped_column(Double, default=0.0)
    #: Latency percentiles: {"ttft_ms_p95": ..., "tpot_ms_mean": ..., "itl_ms_p99": ...}.
    latency_ms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Steady-state output tok/s (over the window with the whole load in flight; what goodput
    #: is made of) and the window's figures: {"window_s", "requests", "ttft_ms_p95", ...}.
    #: None for points stored before steady-state figures existed, and imported ones.
    steady_output_tokens_per_second: Mapped[float | None] = mapped_column(Double)
    steady: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    run: Mapped[BenchmarkRunModel] = relationship(back_populates="points")
