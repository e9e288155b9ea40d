"""The load generator: closed loop at a concurrency, or open loop at a Poisson request rate.

Both append each finished request to a caller-owned list as it completes, so a cancelled point
still leaves its finished requests behind (Ctrl-C keeps partial results).

Each point has two sets of figures.

Whole-run figures (as ``vllm bench serve`` computes them, so the two compare): throughput is
successful output tokens over the wall time from the first send to the last token of the last
request (the peer stops its clock after reading the stream's tail, a hair later); percentiles
are over successful requests; ITL percentiles pool every gap of every request. They include the
ramp-up and the drain, when fewer than the target load is in flight, so they understate what an
instance sustains (by about 9% at concurrency 20 on the known-timing server).

Steady-state figures (what goodput and the planner use), over a window in which the target load
is in flight, warm-up and drain excluded (:func:`steady_window`):
- closed loop at concurrency c: from the moment the c-th request is sent (all c in flight) to the
  first completion after the last request is sent (from then on a worker finds the queue empty
  and fewer than c run);
- open loop at rate r: from the first send plus the median request latency (by Little's law the
  number in flight has then reached r x latency) to the last send (arrivals stop).
Steady-state throughput, closed loop: by Little's law with the c requests the loop holds open,
``c * sum(output tokens) / sum(latency)`` over the requests inside the window (latency from the
request's last byte written to its last token). The client's own turnaround between one
request's end and its worker's next send, when c - 1 are open, is so not charged to the server:
at 100 ms requests it is 3-4% of the time on a loaded 2-core machine, and a serving fleet's
load balancer keeps the batch full without it. Open loop: the output tokens streamed inside
the window (each token chunk at its arrival time; a chunk carries ``output_tokens / chunks``
tokens of its request) over the window's length.
Latency percentiles are over the requests sent inside the window and, in closed loop, also
finished inside it (their whole life at the target load). A point whose window holds no request
has no steady-state figures (``steady_requests == 0``); its whole-run figures stand in for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import certifi
import numpy as np

from bench.client import RequestResult, RequestSpec, send_request, send_tracing

PERCENTILES = (50, 90, 95, 99)

OnResult = Callable[[RequestResult], None]


@dataclass(frozen=True)
class Target:
    base_url: str
    model: str
    timeout_s: float = 120.0


@dataclass
class PointMetrics:
    concurrency: int | None
    request_rate: float | None
    requests: int
    errors: int
    error_rate: float
    duration_s: float
    request_per_second: float
    output_tokens_per_second: float
    total_tokens_per_second: float
    #: ttft/tpot/itl/e2el x mean/p50/p90/p95/p99, in milliseconds: {"ttft_ms_p95": ...}.
    latency_ms: dict[str, float]
    #: Error messages (first 80 characters) and how often each occurred.
    error_kinds: dict[str, int] = field(default_factory=dict)
    malformed_lines: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    #: Whether it met the SLO (set by the sweep).
    passed: bool = False
    #: Whether the point was cut short (Ctrl-C).
    partial: bool = False
    #: Steady-state figures (module docstring): the window's start and length in seconds from
    #: the point's start, the requests it holds, the output tok/s and the latency percentiles.
    steady_start_s: float = 0.0
    steady_window_s: float = 0.0
    steady_requests: int = 0
    steady_output_tokens_per_second: float = 0.0
    steady_latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def goodput_tokens_per_second(self) -> float:
        """The figure goodput is made of: steady-state, else (no window) whole-run."""
        if self.steady_requests:
            return self.steady_output_tokens_per_second
        return self.output_tokens_per_second

    @property
    def slo_latency_ms(self) -> dict[str, float]:
        """The latency the SLO is judged on: steady-state, else (no window) whole-run."""
        return self.steady_latency_ms if self.steady_requests else self.latency_ms

    def steady_dict(self) -> dict[str, Any]:
        """The JSON shape of the steady-state figures."""
        return {
            "window_start_s": self.steady_start_s,
            "window_s": self.steady_window_s,
            "requests": self.steady_requests,
            "output_tokens_per_second": self.steady_output_tokens_per_second,
            **self.steady_latency_ms,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a sweep point."""
        return {
            "concurrency": self.concurrency,
            "request_rate": self.request_rate,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "passed": self.passed,
            "partial": self.partial,
            "duration_s": self.duration_s,
            "request_per_second": self.request_per_second,
            "output_tokens_per_second": self.output_tokens_per_second,
            "total_tokens_per_second": self.total_tokens_per_second,
            **self.latency_ms,
            "error_kinds": self.error_kinds,
            "malformed_lines": self.malformed_lines,
            "goodput_tokens_per_second": self.goodput_tokens_per_second,
            "steady": self.steady_dict(),
        }


class ClientPool:
    """aiohttp sessions shared out over the requests of a point: slot ``i`` uses session
    ``i % size``. Sessions are made on first use, inside the running event loop.

    Why aiohttp: its HTTP parser and chunked decoding are in C, where httpx (h11) parses every
    chunk of every stream in Python: ``python -m benchmarks.harness`` (64-token streams, 20 ms
    gaps, one core shared with other work) measured 125 us of client CPU per token with httpx,
    45 with aiohttp, and a kept-up rate of 4,040 and 7,556 tok/s. Why a session per closed-loop
    worker: each holds its one kept-alive connection, so a worker never waits on another's.
    """

    def __init__(self, size: int, *, connections_each: int | None = 1) -> None:
        self._size = max(1, size)
        self._connections_each = connections_each or 0  # aiohttp: 0 means unlimited
        self._sessions: list[aiohttp.ClientSession] = []

    def client(self, slot: int) -> aiohttp.ClientSession:
        if not self._sessions:
            self._sessions = [self._session() for _ in range(self._size)]
        return self._sessions[slot % self._size]

    async def warm(self, base_url: str, count: int) -> None:
        """Open a connection for each of ``count`` slots before measuring, so that TCP set-up
        is not counted as the server's time to first token."""

        async def touch(slot: int) -> None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.client(slot).get(
                    base_url.rstrip("/") + "/health", timeout=aiohttp.ClientTimeout(total=5.0)
                ) as response:
                    await response.read()

        await asyncio.gather(*(touch(slot) for slot in range(count)))

    async def aclose(self) -> None:
        await asyncio.gather(*(session.close() for session in self._sessions))
        self._sessions = []

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._connections_each, limit_per_host=0, ssl=_tls_context()
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            trace_configs=[send_tracing()],
        )


def closed_loop_pool(concurrency: int) -> ClientPool:
    """A client (one connection) per closed-loop worker."""
    return ClientPool(concurrency, connections_each=1)


def open_loop_pool(clients: int = 64) -> ClientPool:
    """Clients with unlimited connections each; Poisson arrivals spread over them."""
    return ClientPool(clients, connections_each=None)


async def run_closed_loop(
    pool: ClientPool,
    target: Target,
    specs: Sequence[RequestSpec],
    *,
    concurrency: int,
    results: list[RequestResult],
    on_result: OnResult | None = None,
) -> float:
    """Send ``specs`` with ``concurrency`` requests in flight at all times; return the point's
    duration in seconds. Finished requests go to ``results`` as they complete."""
    queue = iter(specs)
    origin = time.perf_counter()
    finished_at = origin

    async def worker(slot: int) -> None:
        nonlocal finished_at
        client = pool.client(slot)
        for spec in queue:
            result = await _send(client, target, spec, origin)
            finished_at = max(finished_at, origin + result.end_offset_s)
            results.append(result)
            if on_result:
                on_result(result)

    await asyncio.gather(*(worker(slot) for slot in range(min(concurrency, len(specs)))))
    return finished_at - origin


async def run_open_loop(
    pool: ClientPool,
    target: Target,
    specs: Sequence[RequestSpec],
    *,
    request_rate: float,
    results: list[RequestResult],
    seed: int = 0,
    on_result: OnResult | None = None,
) -> float:
    """Send ``specs`` at Poisson arrivals of ``request_rate`` per second (exponential gaps from
    a seeded generator); return the duration from the first send to the last completion."""
    rng = random.Random(seed)
    origin = time.perf_counter()
    finished_at = origin
    tasks: list[asyncio.Task[None]] = []

    async def one(slot: int, spec: RequestSpec) -> None:
        nonlocal finished_at
        result = await _send(pool.client(slot), target, spec, origin)
        finished_at = max(finished_at, origin + result.end_offset_s)
        results.append(result)
        if on_result:
            on_result(result)

    send_at = 0.0
    try:
        for slot, spec in enumerate(specs):
            delay = origin + send_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(slot, spec)))
            send_at += rng.expovariate(request_rate)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return finished_at - origin


async def _send(
    client: aiohttp.ClientSession, target: Target, spec: RequestSpec, origin: float
) -> RequestResult:
    return await send_request(
        client,
        base_url=target.base_url,
        model=target.model,
        spec=spec,
        timeout_s=target.timeout_s,
        clock_origin=origin,
    )


def summarize(
    results: Sequence[RequestResult],
    duration_s: float,
    *,
    concurrency: int | None = None,
    request_rate: float | None = None,
) -> PointMetrics:
    """The per-point figures of ``results`` over ``duration_s`` (whole-run), and the
    steady-state figures over :func:`steady_window`."""
    good = [r for r in results if r.ok]
    errors = len(results) - len(good)
    output_tokens = sum(r.output_tokens for r in good)
    input_tokens = sum(r.input_tokens for r in good)
    duration = max(duration_s, 1e-9)
    kinds = Counter((r.error or "unknown")[:80] for r in results if not r.ok)
    point = PointMetrics(
        concurrency=concurrency,
        request_rate=request_rate,
        requests=len(results),
        errors=errors,
        error_rate=errors / len(results) if results else 0.0,
        duration_s=duration_s,
        request_per_second=len(good) / duration,
        output_tokens_per_second=output_tokens / duration,
        total_tokens_per_second=(output_tokens + input_tokens) / duration,
        latency_ms=_latency(good),
        error_kinds=dict(kinds),
        malformed_lines=sum(r.malformed_lines for r in results),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    window = steady_window(results, concurrency=concurrency, request_rate=request_rate)
    if window is not None:
        start_s, end_s = window
        inside = [r for r in good if _inside(r, start_s, end_s, closed=concurrency is not None)]
        if inside:
            point.steady_start_s = start_s
            point.steady_window_s = end_s - start_s
            point.steady_requests = len(inside)
            if concurrency is not None:
                busy_s = sum(r.latency_s or 0.0 for r in inside)
                point.steady_output_tokens_per_second = (
                    concurrency * sum(r.output_tokens for r in inside) / max(busy_s, 1e-9)
                )
            else:
                point.steady_output_tokens_per_second = _tokens_between(good, start_s, end_s) / (
                    end_s - start_s
                )
            point.steady_latency_ms = _latency(inside)
    return point


def steady_window(
    results: Sequence[RequestResult],
    *,
    concurrency: int | None = None,
    request_rate: float | None = None,
) -> tuple[float, float] | None:
    """The steady-state window (start, end) in seconds from the point's start, by the rule of
    the module docstring; ``None`` when the run is too short to have one."""
    if not results:
        return None
    starts = sorted(r.start_offset_s for r in results)
    last_send = starts[-1]
    if concurrency is not None:
        if len(results) <= concurrency:
            return None
        start = starts[min(concurrency, len(starts)) - 1]
        ends = [r.end_offset_s for r in results if r.end_offset_s > last_send]
        if not ends:
            return None
        end = min(ends)
    else:
        latencies = [r.latency_s for r in results if r.ok and r.latency_s is not None]
        if not latencies:
            return None
        start = starts[0] + float(np.median(latencies))
        end = last_send
    return (start, end) if end > start else None


def _inside(result: RequestResult, start_s: float, end_s: float, *, closed: bool) -> bool:
    # A nanosecond of slack: the request that opens the window is inside it, whatever the
    # rounding of end - latency.
    sent = _sent_offset(result) + 1e-9
    if closed:
        return sent >= start_s and result.end_offset_s <= end_s + 1e-9
    return start_s <= sent <= end_s + 1e-9


def _sent_offset(result: RequestResult) -> float:
    # TTFT and latency count from the request's last byte written, a hair after its start.
    if result.latency_s is None:
        return result.start_offset_s
    return result.end_offset_s - result.latency_s


def _tokens_between(good: Sequence[RequestResult], start_s: float, end_s: float) -> float:
    """Output tokens whose chunks arrived inside [start_s, end_s]."""
    total = 0.0
    for result in good:
        if result.ttft_s is None or result.output_tokens <= 0:
            continue
        first = _sent_offset(result) + result.ttft_s
        times = first + np.concatenate(([0.0], np.cumsum(result.itl_s)))
        inside = int(np.count_nonzero((times >= start_s) & (times <= end_s)))
        total += inside * result.output_tokens / len(times)
    return total


def _latency(good: Sequence[RequestResult]) -> dict[str, float]:
    latency: dict[str, float] = {}
    _add_stats(latency, "ttft", [r.ttft_s for r in good if r.ttft_s is not None])
    _add_stats(latency, "tpot", [t for r in good if (t := r.tpot_s) is not None])
    _add_stats(latency, "itl", [gap for r in good for gap in r.itl_s])
    _add_stats(latency, "e2el", [r.latency_s for r in good if r.latency_s is not None])
    return latency


def _add_stats(into: dict[str, float], name: str, values_s: Sequence[float]) -> None:
    if not values_s:
        return
    values_ms = np.asarray(values_s, dtype=float) * 1000.0
    into[f"{name}_ms_mean"] = float(values_ms.mean())
    for q in PERCENTILES:
        into[f"{name}_ms_p{q}"] = float(np.percentile(values_ms, q))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes about 0.1 s of CPU; one context serves every client.
    return ssl.create_default_context(cafile=certifi.where())
