"""Storing benchmark runs in the oracle (benchmark_runs and benchmark_points).

A run is written in one transaction, after the sweep (no network call inside a session). An
interrupted sweep is stored too, with ``status = "incomplete"``: the planner ignores it, but its
points are kept.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from bench.loadgen import PointMetrics
from bench.sweep import Slo, SweepState
from oracle.db import transaction
from oracle.models import BenchmarkPointModel, BenchmarkRunModel, InstanceTypeModel

IMDS_URL = "http://169.254.169.254"
#: The metadata service answers in milliseconds on EC2; elsewhere nothing answers at all.
IMDS_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class RunMeta:
    """Everything about a run except its points."""

    model: str
    instance_type: str
    workload_id: str
    slo: Slo
    #: The workload bucket the run measured (``bench.buckets``); empty: the whole workload.
    bucket: str = ""
    gpu_count: int = 1
    tensor_parallel: int = 1
    engine: str = "vllm"
    engine_version: str = ""
    endpoint: str = ""
    host: str = field(default_factory=socket.gethostname)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    source: str = "measured"
    source_detail: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def record_run(engine: Engine, *, meta: RunMeta, state: SweepState) -> int:
    """Store the run and its points in one transaction; return the run's id."""
    with transaction(engine) as session:
        return add_run(session, meta=meta, state=state)


def add_run(session: Session, *, meta: RunMeta, state: SweepState) -> int:
    """Add the run to an open session (the caller owns the transaction)."""
    now = datetime.now(UTC)
    details = dict(meta.details)
    details["slo"] = {
        "ttft_p95_ms": meta.slo.ttft_p95_ms,
        "tpot_p95_ms": meta.slo.tpot_p95_ms,
        "max_error_rate": meta.slo.max_error_rate,
    }
    if state.partial_point is not None:
        details["partial_point"] = state.partial_point.to_dict()
    run = BenchmarkRunModel(
        source=meta.source,
        source_detail=meta.source_detail[:512],
        observed_at=meta.finished_at or now,
        model=meta.model,
        instance_type=meta.instance_type,
        gpu_count=meta.gpu_count,
        tensor_parallel=meta.tensor_parallel,
        engine=meta.engine,
        engine_version=meta.engine_version[:64],
        workload_id=meta.workload_id,
        bucket=meta.bucket,
        ttft_p95_ms_slo=meta.slo.ttft_p95_ms,
        tpot_p95_ms_slo=meta.slo.tpot_p95_ms,
        goodput_tokens_per_second=state.goodput_tokens_per_second,
        endpoint=meta.endpoint[:512],
        host=meta.host[:256],
        started_at=meta.started_at,
        finished_at=meta.finished_at or now,
        status="complete" if state.complete else "incomplete",
        details=details,
    )
    run.points = [point_model(point) for point in state.curve()]
    session.add(run)
    session.flush()
    return run.id


def point_model(point: PointMetrics) -> BenchmarkPointModel:
    return BenchmarkPointModel(
        concurrency=point.concurrency,
        request_rate=point.request_rate,
        requests=point.requests,
        errors=point.errors,
        error_rate=point.error_rate,
        passed=point.passed,
        output_tokens_per_second=point.output_tokens_per_second,
        request_per_second=point.request_per_second,
        total_tokens_per_second=point.total_tokens_per_second,
        latency_ms=dict(point.latency_ms),
        steady_output_tokens_per_second=(
            point.steady_output_tokens_per_second if point.steady_requests else None
        ),
        steady=point.steady_dict() if point.steady_requests else None,
    )


def gpu_count_of(engine: Engine, instance_type: str) -> int | None:
    """The instance type's GPU count from the oracle's catalog, if it knows the type."""
    with transaction(engine) as session:
        row = session.get(InstanceTypeModel, instance_type)
        return row.accelerator_count if row is not None else None


def list_runs(session: Session, *, model: str | None = None) -> list[BenchmarkRunModel]:
    """Stored runs, newest first, with their points loaded."""
    query = (
        sa.select(BenchmarkRunModel)
        .options(selectinload(BenchmarkRunModel.points))
        .order_by(BenchmarkRunModel.observed_at.desc(), BenchmarkRunModel.id.desc())
    )
    if model is not None:
        query = query.where(BenchmarkRunModel.model == model)
    return list(session.scalars(query))


def instance_type_from_imds(
    *, base_url: str = IMDS_URL, timeout_s: float = IMDS_TIMEOUT_S
) -> str | None:
    """The EC2 instance type from the instance metadata service (IMDSv2: a session token by
    PUT, then the metadata by GET); ``None`` when not on EC2 or it does not answer in time."""
    try:
        with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
            token = client.put(
                "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
            )
            if token.status_code != 200:
                return None
            answer = client.get(
                "/latest/meta-data/instance-type",
                headers={"X-aws-ec2-metadata-token": token.text},
            )
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    return answer.text.strip() or None
