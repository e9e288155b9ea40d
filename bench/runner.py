"""One benchmark run end to end: probe the endpoint, sweep, record (the service behind
``scheduler bench run``).

Cancellation (Ctrl-C) is part of the contract: the points measured so far, and the finished
requests of the point in progress, are stored with ``status = "incomplete"`` and returned.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from bench.client import ServerInfo, probe_endpoint
from bench.loadgen import Target
from bench.record import RunMeta, record_run
from bench.sweep import Slo, SweepOptions, SweepProgress, SweepState, run_sweep
from bench.workloads import Workload, bucket_workload
from oracle.mix import Bucket, BucketMix


@dataclass(frozen=True)
class BenchmarkRequest:
    endpoint: str
    model: str
    instance_type: str
    workload: Workload
    slo: Slo = field(default_factory=Slo)
    options: SweepOptions = field(default_factory=SweepOptions)
    gpu_count: int = 1
    tensor_parallel: int = 1
    request_timeout_s: float = 120.0
    #: How long the endpoint may take to answer the first probe.
    connect_timeout_s: float = 5.0
    #: When measuring one bucket of a mix: the mix and the bucket (``workload`` is then the
    #: bucket's fixed shape, and the run is stored under the mix's id with the bucket's name).
    mix: BucketMix | None = None
    bucket: Bucket | None = None


@dataclass
class BenchmarkOutcome:
    run_id: int
    complete: bool
    server: ServerInfo
    state: SweepState
    started_at: datetime
    finished_at: datetime
    details: dict[str, object] = field(default_factory=dict)

    @property
    def goodput_tokens_per_second(self) -> float:
        return self.state.goodput_tokens_per_second


def run_benchmark(
    engine: Engine,
    request: BenchmarkRequest,
    *,
    progress: SweepProgress | None = None,
) -> BenchmarkOutcome:
    """Blocking wrapper of :func:`measure` (Ctrl-C stops the sweep, keeps what was measured)."""
    return asyncio.run(measure(engine, request, progress=progress))


async def measure(
    engine: Engine,
    request: BenchmarkRequest,
    *,
    progress: SweepProgress | None = None,
    state: SweepState | None = None,
) -> BenchmarkOutcome:
    """Probe, sweep and record; on cancellation record what there is and return it."""
    server = await probe_endpoint(
        request.endpoint, model=request.model, timeout_s=request.connect_timeout_s
    )
    state = state if state is not None else SweepState()
    started_at = datetime.now(UTC)
    target = Target(request.endpoint.rstrip("/"), request.model, request.request_timeout_s)
    try:
        await run_sweep(
            target, request.workload, request.slo, request.options, state=state, progress=progress
        )
    except asyncio.CancelledError:
        # Swallowed on purpose: asyncio.run then returns normally after Ctrl-C, and the partial
        # results below are stored and returned.
        state.complete = False
    finished_at = datetime.now(UTC)
    details: dict[str, object] = {
        "mode": request.options.mode,
        "requests_per_point": request.options.requests_per_point,
        "min_window_requests": request.options.min_window_requests,
        "max_concurrency": request.options.max_concurrency,
        "workload_kind": request.workload.kind,
        "api": request.workload.api,
    }
    if request.mix is not None and request.bucket is not None:
        details["bucket"] = {
            "input_tokens": request.bucket.input_tokens,
            "output_tokens": request.bucket.output_tokens,
            "share": request.bucket.share,
            "mix_source": request.mix.source,
        }
    meta = RunMeta(
        model=request.model,
        instance_type=request.instance_type,
        workload_id=(
            request.mix.workload_id if request.mix is not None else request.workload.workload_id
        ),
        bucket=request.bucket.name if request.bucket is not None else "",
        slo=request.slo,
        gpu_count=request.gpu_count,
        tensor_parallel=request.tensor_parallel,
        engine="vllm",
        engine_version=server.engine_version,
        endpoint=server.base_url,
        started_at=started_at,
        finished_at=finished_at,
        source="measured",
        source_detail=f"scheduler bench run against {server.base_url}",
        details=details,
    )
    run_id = record_run(engine, meta=meta, state=state)
    return BenchmarkOutcome(run_id, state.complete, server, state, started_at, finished_at)


def run_bucket_benchmark(
    engine: Engine,
    request: BenchmarkRequest,
    mix: BucketMix,
    *,
    progress: SweepProgress | None = None,
) -> list[BenchmarkOutcome]:
    """Goodput per bucket of ``mix`` at the request's SLO (Mélange's profiling: one sweep per
    bucket, of that bucket's shape), each stored as its own run; Ctrl-C stops after storing the
    bucket in progress as incomplete. Returns the outcomes in bucket order."""

    async def each() -> list[BenchmarkOutcome]:
        outcomes: list[BenchmarkOutcome] = []
        for bucket in mix.buckets:
            one = replace(
                request,
                workload=bucket_workload(
                    bucket.input_tokens, bucket.output_tokens, api=request.workload.api
                ),
                mix=mix,
                bucket=bucket,
            )
            outcome = await measure(engine, one, progress=progress)
            outcomes.append(outcome)
            if not outcome.complete:
                break
        return outcomes

    return asyncio.run(each())
