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

import certifi
import httpx
import numpy as np

from bench.client import RequestResult, RequestSpec, send_request

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


def make_client(connections: int) -> httpx.AsyncClient:
    """One client per point: a pool large enough that no request waits for a connection."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=None, verify=_tls_context())


async def warm_connections(client: httpx.AsyncClient, base_url: str, count: int) -> None:
    """Open ``count`` pooled connections before measuring, so that TCP set-up is not counted as
    the server's time to first token."""

    async def touch() -> None:
        with contextlib.suppress(httpx.HTTPError):
            await client.get(base_url.rstrip("/") + "/health", timeout=5.0)

    await asyncio.gather(*(touch() for _ in range(count)))


async def run_closed_loop(
    client: httpx.AsyncClient,
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

    async def worker() -> None:
        nonlocal finished_at
        for spec in queue:
            result = await send_request(
                client,
                base_url=target.base_url,
                model=target.model,
                spec=spec,
                timeout_s=target.timeout_s,
                clock_origin=origin,
            )
            finished_at = max(finished_at, origin + result.end_offset_s)
            results.append(result)
            if on_result:
                on_result(result)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(specs)))))
    return finished_at - origin


async def run_open_loop(
    client: httpx.AsyncClient,
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

    async def one(spec: RequestSpec) -> None:
        nonlocal finished_at
        result = await send_request(
            client,
            base_url=target.base_url,
            model=target.model,
            spec=spec,
            timeout_s=target.timeout_s,
            clock_origin=origin,
        )
        finished_at = max(finished_at, origin + result.end_offset_s)
        results.append(result)
        if on_result:
            on_result(result)

    send_at = 0.0
    try:
        for spec in specs:
            delay = origin + send_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(spec)))
            send_at += rng.expovariate(request_rate)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return finished_at - origin


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
