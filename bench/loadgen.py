"""The load generator: closed loop at a concurrency, or open loop at a Poisson request rate.

Both append each finished request to a caller-owned list as it completes, so a cancelled point
still leaves its finished requests behind (Ctrl-C keeps partial results).

Per-point figures (as ``vllm bench serve`` computes them): throughput is successful output
tokens over the wall time from the first send to the last token of the last request (the peer
stops its clock after reading the stream's tail, a hair later); percentiles are over successful
requests; ITL percentiles pool every gap of every request.
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
    """The per-point figures of ``results`` over ``duration_s``."""
    good = [r for r in results if r.ok]
    errors = len(results) - len(good)
    output_tokens = sum(r.output_tokens for r in good)
    input_tokens = sum(r.input_tokens for r in good)
    duration = max(duration_s, 1e-9)
    latency: dict[str, float] = {}
    _add_stats(latency, "ttft", [r.ttft_s for r in good if r.ttft_s is not None])
    _add_stats(latency, "tpot", [t for r in good if (t := r.tpot_s) is not None])
    _add_stats(latency, "itl", [gap for r in good for gap in r.itl_s])
    _add_stats(latency, "e2el", [r.latency_s for r in good if r.latency_s is not None])
    kinds = Counter((r.error or "unknown")[:80] for r in results if not r.ok)
    return PointMetrics(
        concurrency=concurrency,
        request_rate=request_rate,
        requests=len(results),
        errors=errors,
        error_rate=errors / len(results) if results else 0.0,
        duration_s=duration_s,
        request_per_second=len(good) / duration,
        output_tokens_per_second=output_tokens / duration,
        total_tokens_per_second=(output_tokens + input_tokens) / duration,
        latency_ms=latency,
        error_kinds=dict(kinds),
        malformed_lines=sum(r.malformed_lines for r in results),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


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
