"""The goodput sweep: the highest output tok/s at which requests still meet the latency SLO.

A point passes when TTFT p95 <= ``ttft_p95_ms``, TPOT p95 <= ``tpot_p95_ms`` and the error rate
is under ``max_error_rate`` (a point without errors always passes that test). The sweep doubles
the concurrency (or the request rate) from the start until a point fails or the maximum is
reached, then bisects between the last passing and the first failing level until they are
``resolution`` apart (relative; adjacent integers at least). Goodput is the largest output
tok/s among passing points. Every point is kept: the whole curve is part of the result.

Goodput and the SLO test use each point's steady-state figures (:mod:`bench.loadgen`: the
window in which the target load is in flight, warm-up and drain excluded); the whole-run
figures are kept beside them. A point sends enough requests for its window to hold at least
``min_window_requests`` finished requests: in closed loop at concurrency c the first c and the
last c requests straddle the window's edges, so it sends ``min_window_requests + 2c`` (at
least); when the window still holds fewer (an open loop, or mixed lengths), the point runs
again with twice the requests, up to ``max_extensions`` times.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bench.client import RequestResult
from bench.loadgen import (
    PointMetrics,
    Target,
    closed_loop_pool,
    open_loop_pool,
    run_closed_loop,
    run_open_loop,
    summarize,
)
from bench.workloads import Workload, make_requests


@dataclass(frozen=True)
class Slo:
    ttft_p95_ms: float = 2000.0
    tpot_p95_ms: float = 100.0
    max_error_rate: float = 0.01

    def passes(self, point: PointMetrics) -> bool:
        if point.requests == point.errors:
            return False
        if point.errors and point.error_rate >= self.max_error_rate:
            return False
        latency = point.slo_latency_ms
        ttft = latency.get("ttft_ms_p95", math.inf)
        # One-token outputs have no TPOT; then only TTFT counts.
        tpot = latency.get("tpot_ms_p95", 0.0)
        return ttft <= self.ttft_p95_ms and tpot <= self.tpot_p95_ms


@dataclass(frozen=True)
class SweepOptions:
    mode: Literal["concurrency", "rate"] = "concurrency"
    start_concurrency: int = 1
    max_concurrency: int = 256
    start_rate: float = 0.5
    max_rate: float = 256.0
    requests_per_point: int = 64
    #: Each point sends at least this many requests per concurrency slot (closed loop).
    min_waves: int = 2
    #: Finished requests the steady-state window of a point must hold (module docstring); 0
    #: turns the sizing off.
    min_window_requests: int = 32
    #: How often a point whose window holds too few requests runs again with twice as many.
    max_extensions: int = 2
    #: Bisection stops when the failing level is within this fraction above the passing one
    #: (0.05: the goodput level found is within 5% of the largest passing one).
    resolution: float = 0.05
    seed: int = 0


@dataclass
class SweepProgress:
    on_point_start: Callable[[float, int], None] | None = None
    on_result: Callable[[RequestResult], None] | None = None
    on_point_done: Callable[[PointMetrics], None] | None = None


@dataclass
class SweepState:
    """The sweep so far; read it after a cancellation to keep partial results."""

    points: list[PointMetrics] = field(default_factory=list)
    #: The point that was running when the sweep was cancelled (its finished requests only).
    partial_point: PointMetrics | None = None
    complete: bool = False

    @property
    def goodput_tokens_per_second(self) -> float:
        best = self.best_point
        return best.goodput_tokens_per_second if best else 0.0

    @property
    def best_point(self) -> PointMetrics | None:
        """The passing point of the largest steady-state output tok/s."""
        passing = [point for point in self.points if point.passed]
        return max(passing, key=lambda p: p.goodput_tokens_per_second) if passing else None

    def curve(self) -> list[PointMetrics]:
        """Every point, ordered by level."""
        return sorted(self.points, key=lambda p: (p.concurrency or 0, p.request_rate or 0.0))


async def run_sweep(
    target: Target,
    workload: Workload,
    slo: Slo,
    options: SweepOptions,
    *,
    state: SweepState | None = None,
    progress: SweepProgress | None = None,
) -> SweepState:
    """Run the sweep against ``target``; fills and returns ``state`` (pass one in to read it
    after a cancellation)."""
    state = state if state is not None else SweepState()
    progress = progress or SweepProgress()
    integer = options.mode == "concurrency"
    start = float(options.start_concurrency if integer else options.start_rate)
    top = float(options.max_concurrency if integer else options.max_rate)

    async def measure(level: float) -> bool:
        point = await _run_point(target, workload, options, level, state, progress)
        point.passed = slo.passes(point)
        state.points.append(point)
        if progress.on_point_done:
            progress.on_point_done(point)
        return point.passed

    passing: float | None = None
    failing: float | None = None
    level = start
    while True:
        if await measure(level):
            passing = level
            if level >= top:
                break
            level = min(top, level * 2)
        else:
            failing = level
            break
    if passing is not None and failing is not None:
        while True:
            step = _midpoint(passing, failing, integer)
            if step is None or failing <= passing * (1 + options.resolution):
                break
            if await measure(step):
                passing = step
            else:
                failing = step
    state.complete = True
    return state


async def _run_point(
    target: Target,
    workload: Workload,
    options: SweepOptions,
    level: float,
    state: SweepState,
    progress: SweepProgress,
) -> PointMetrics:
    concurrency = int(level) if options.mode == "concurrency" else None
    count = requests_for_point(options, concurrency)
    point = await _run_once(target, workload, options, level, count, state, progress)
    for _ in range(options.max_extensions):
        if point.steady_requests >= options.min_window_requests or point.errors == point.requests:
            break
        count *= 2
        point = await _run_once(target, workload, options, level, count, state, progress)
    return point


def requests_for_point(options: SweepOptions, concurrency: int | None) -> int:
    """Requests a point sends first (module docstring)."""
    count = options.requests_per_point
    if concurrency is not None:
        count = max(count, concurrency * options.min_waves)
        if options.min_window_requests:
            count = max(count, options.min_window_requests + 2 * concurrency)
    return count


async def _run_once(
    target: Target,
    workload: Workload,
    options: SweepOptions,
    level: float,
    count: int,
    state: SweepState,
    progress: SweepProgress,
) -> PointMetrics:
    concurrency = int(level) if options.mode == "concurrency" else None
    rate = None if concurrency is not None else level
    specs = make_requests(workload, count, seed=options.seed)
    if progress.on_point_start:
        progress.on_point_start(level, count)
    results: list[RequestResult] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        if concurrency is not None:
            async with closed_loop_pool(concurrency) as pool:
                await pool.warm(target.base_url, concurrency)
                started = loop.time()
                duration = await run_closed_loop(
                    pool,
                    target,
                    specs,
                    concurrency=concurrency,
                    results=results,
                    on_result=progress.on_result,
                )
        else:
            assert rate is not None
            async with open_loop_pool() as pool:
                duration = await run_open_loop(
                    pool,
                    target,
                    specs,
                    request_rate=rate,
                    results=results,
                    seed=options.seed,
                    on_result=progress.on_result,
                )
    except asyncio.CancelledError:
        if results:
            partial = summarize(
                results, loop.time() - started, concurrency=concurrency, request_rate=rate
            )
            partial.partial = True
            state.partial_point = partial
        raise
    return summarize(results, duration, concurrency=concurrency, request_rate=rate)


def _midpoint(low: float, high: float, integer: bool) -> float | None:
    if integer:
        middle = (int(low) + int(high)) // 2
        return float(middle) if int(low) < middle < int(high) else None
    return math.sqrt(low * high)
