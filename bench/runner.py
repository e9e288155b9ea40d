"""One benchmark run end to end: probe the endpoint, sweep, record (the service behind
``scheduler bench run``).

Cancellation (Ctrl-C) is part of the contract: the points measured so far, and the finished
requests of the point in progress, are stored with ``status = "incomplete"`` and returned.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from bench.client import ServerInfo, probe_endpoint
from bench.loadgen import Target
from bench.record import RunMeta, record_run
from bench.sweep import Slo, SweepOptions, SweepProgress, SweepState, run_sweep
from bench.workloads import Workload


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
    meta = RunMeta(
        model=request.model,
        instance_type=request.instance_type,
        workload_id=request.workload.workload_id,
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
        details={
            "mode": request.options.mode,
            "requests_per_point": request.options.requests_per_point,
            "max_concurrency": request.options.max_concurrency,
            "workload_kind": request.workload.kind,
            "api": request.workload.api,
        },
    )
    run_id = record_run(engine, meta=meta, state=state)
    return BenchmarkOutcome(run_id, state.complete, server, state, started_at, finished_at)
