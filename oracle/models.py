"""SQLAlchemy ORM classes of the oracle's facts store, mapped onto :mod:`oracle.tables`.

The tables (columns, types, constraints, indexes) are defined once, in :mod:`oracle.tables`;
each class here maps one of them and names its columns' Python types. See there for what
every table holds. The code that writes facts uses these classes; readers that only query may
use the tables alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from oracle import tables
from oracle.tables import NAMING_CONVENTION, SOURCES, UTCDateTime

__all__ = ["NAMING_CONVENTION", "SOURCES", "Base", "UTCDateTime"]


class Base(DeclarativeBase):
    metadata = tables.metadata
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}  # noqa: RUF012


class ProvenanceMixin:
    source: Mapped[str]
    source_detail: Mapped[str]
    observed_at: Mapped[datetime]


class InstanceTypeModel(ProvenanceMixin, Base):
    __table__ = tables.instance_types

    instance_type: Mapped[str]
    family: Mapped[str]
    accelerator_name: Mapped[str]
    accelerator_manufacturer: Mapped[str]
    accelerator_count: Mapped[int]
    accelerator_memory_mib_each: Mapped[int]
    vcpus: Mapped[int]
    memory_mib: Mapped[int]
    architecture: Mapped[str]


class AvailabilityZoneModel(ProvenanceMixin, Base):
    """AZ name to AZ ID, as one account sees it."""

    __table__ = tables.availability_zones

    zone_id: Mapped[str]
    zone_name: Mapped[str]
    region: Mapped[str]


class OfferingModel(ProvenanceMixin, Base):
    """An instance type offered in an availability zone."""

    __table__ = tables.offerings

    id: Mapped[int]
    region: Mapped[str]
    zone: Mapped[str]
    availability_zone: Mapped[str | None]
    availability_zone_id: Mapped[str | None]
    instance_type: Mapped[str]


class SpotPriceModel(ProvenanceMixin, Base):
    """One DescribeSpotPriceHistory change record: the price from ``timestamp`` until the next."""

    __table__ = tables.spot_prices

    id: Mapped[int]
    region: Mapped[str]
    zone: Mapped[str]
    availability_zone: Mapped[str | None]
    availability_zone_id: Mapped[str | None]
    instance_type: Mapped[str]
    product_description: Mapped[str]
    timestamp: Mapped[datetime]
    price_usd_per_hour: Mapped[float]
    ingest_run_id: Mapped[int | None]


class OnDemandPriceModel(ProvenanceMixin, Base):
    __table__ = tables.on_demand_prices

    id: Mapped[int]
    region: Mapped[str]
    instance_type: Mapped[str]
    operating_system: Mapped[str]
    effective_date: Mapped[datetime]
    price_usd_per_hour: Mapped[float]


class PlacementScoreModel(ProvenanceMixin, Base):
    """A GetSpotPlacementScores answer; ``scope`` is the AZ ID, or ``region`` for region level."""

    __table__ = tables.placement_scores

    id: Mapped[int]
    region: Mapped[str]
    scope: Mapped[str]
    availability_zone_id: Mapped[str | None]
    #: The instance types asked about, sorted and comma-joined.
    instance_types: Mapped[str]
    target_capacity: Mapped[int]
    score: Mapped[int]


class InterruptionFrequencyModel(ProvenanceMixin, Base):
    """A Spot Instance Advisor entry: interruption band and savings against on-demand."""

    __table__ = tables.interruption_frequencies

    id: Mapped[int]
    region: Mapped[str]
    instance_type: Mapped[str]
    operating_system: Mapped[str]
    band_index: Mapped[int]
    band_label: Mapped[str]
    band_max_pct: Mapped[float]
    savings_pct: Mapped[float]


class ServiceQuotaModel(ProvenanceMixin, Base):
    """An EC2 vCPU quota (L-3819A6DF, L-7212CCBC, L-DB2E81BA, L-417A185B) in a region."""

    __table__ = tables.service_quotas

    id: Mapped[int]
    region: Mapped[str]
    quota_code: Mapped[str]
    quota_name: Mapped[str]
    value_vcpus: Mapped[float]


class CapacityErrorModel(ProvenanceMixin, Base):
    """A pool marked unavailable (e.g. InsufficientInstanceCapacity) until ``expires_at``."""

    __table__ = tables.capacity_errors

    id: Mapped[int]
    region: Mapped[str]
    zone: Mapped[str]
    instance_type: Mapped[str]
    market: Mapped[str]
    error_code: Mapped[str]
    expires_at: Mapped[datetime]


class InterruptionEventModel(ProvenanceMixin, Base):
    """A realised spot interruption (or rebalance recommendation) in a pool."""

    __table__ = tables.interruption_events

    id: Mapped[int]
    region: Mapped[str]
    zone: Mapped[str]
    instance_type: Mapped[str]
    instance_id: Mapped[str]
    kind: Mapped[str]


class PoolObservationModel(ProvenanceMixin, Base):
    """What was seen of a pool's risk (see :data:`oracle.tables.pool_observations`)."""

    __table__ = tables.pool_observations

    id: Mapped[int]
    region: Mapped[str]
    zone: Mapped[str]
    availability_zone: Mapped[str | None]
    availability_zone_id: Mapped[str | None]
    instance_type: Mapped[str]
    market: Mapped[str]
    kind: Mapped[str]
    count: Mapped[int]
    at_risk_s: Mapped[float]


class IngestRunModel(Base):
    """One ingest of one source (and region), successful or not."""

    __table__ = tables.ingest_runs

    id: Mapped[int]
    source: Mapped[str]
    kind: Mapped[str]
    region: Mapped[str | None]
    detail: Mapped[str]
    started_at: Mapped[datetime]
    duration_s: Mapped[float]
    rows: Mapped[int]
    status: Mapped[str]
    error: Mapped[str | None]


class BenchmarkRunModel(ProvenanceMixin, Base):
    """A goodput figure for (model, instance type): measured, imported, reference or estimated."""

    __table__ = tables.benchmark_runs

    id: Mapped[int]
    model: Mapped[str]
    instance_type: Mapped[str]
    gpu_count: Mapped[int]
    tensor_parallel: Mapped[int]
    engine: Mapped[str]
    engine_version: Mapped[str]
    workload_id: Mapped[str]
    #: The (input length x output length) bucket of the workload this goodput is for, e.g.
    #: ``in256-1024.out0-128``; empty for a figure over the whole workload (one bucket).
    bucket: Mapped[str]
    ttft_p95_ms_slo: Mapped[float]
    tpot_p95_ms_slo: Mapped[float]
    goodput_tokens_per_second: Mapped[float]
    endpoint: Mapped[str]
    host: Mapped[str]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    status: Mapped[str]
    details: Mapped[dict[str, Any]]

    points: Mapped[list[BenchmarkPointModel]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="BenchmarkPointModel.id"
    )


class BenchmarkPointModel(Base):
    """One sweep point of a benchmark run (at a concurrency or at a request rate)."""

    __table__ = tables.benchmark_points

    id: Mapped[int]
    run_id: Mapped[int]
    concurrency: Mapped[int | None]
    request_rate: Mapped[float | None]
    requests: Mapped[int]
    errors: Mapped[int]
    error_rate: Mapped[float]
    passed: Mapped[bool]
    output_tokens_per_second: Mapped[float]
    request_per_second: Mapped[float]
    total_tokens_per_second: Mapped[float]
    #: Latency percentiles: {"ttft_ms_p95": ..., "tpot_ms_mean": ..., "itl_ms_p99": ...}.
    latency_ms: Mapped[dict[str, Any]]
    #: Steady-state output tok/s and the window's figures (see oracle.tables).
    steady_output_tokens_per_second: Mapped[float | None]
    steady: Mapped[dict[str, Any] | None]

    run: Mapped[BenchmarkRunModel] = relationship(back_populates="points")
