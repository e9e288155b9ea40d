"""How fast a token stream the harness consumes on one core while still timing it right.

``python -m bench.perf.harness`` (part 1): the fake server (its own process, on another core
where there is one) streams ``--output-tokens`` tokens per request with a fixed inter-token
gap; the harness (this process, pinned to one core) runs closed-loop points at rising
concurrency. The offered rate is concurrency / gap. A point is kept up with when the mean and
the median inter-token gap the harness measures are both within 1 ms of the gap the server
actually produced (by its own clock, so that a late server is not blamed on the client). The
figure is the largest token rate kept up with (bisected between the last good and the first
bad concurrency), printed beside the peer's when ``--peer-tokens-per-second`` gives it (the
same measurement made with ``vllm bench serve``), with the ratio.

Part 2 (the real vLLM CPU server, beside ``vllm bench serve``) calls :func:`harness_point`
for the harness's figures of one fixed point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bench.client import Api, RequestResult
from bench.fakeserver import FakeServerConfig, fake_server_process
from bench.loadgen import Target, closed_loop_pool, run_closed_loop, summarize
from bench.workloads import fixed_workload, make_requests

#: A measured gap may differ from the server's by at most this much (the issue's criterion).
MAX_GAP_ERROR_S = 0.001


@dataclass(frozen=True)
class CapacityPoint:
    concurrency: int
    offered_tokens_per_second: float
    consumed_tokens_per_second: float
    server_gap_ms: float
    measured_gap_ms_mean: float
    measured_gap_ms_median: float
    errors: int
    kept_up: bool
    #: CPU time of this (client) process per token consumed: what a dedicated core allows
    #: (1e6 / this tok/s) even where other load shares the core.
    client_cpu_us_per_token: float


@dataclass(frozen=True)
class CapacityResult:
    gap_s: float
    output_tokens: int
    best: CapacityPoint | None
    points: tuple[CapacityPoint, ...]

    @property
    def tokens_per_second(self) -> float:
        return self.best.consumed_tokens_per_second if self.best else 0.0


def harness_capacity(
    *,
    gap_s: float = 0.02,
    output_tokens: int = 64,
    start_concurrency: int = 16,
    max_concurrency: int = 4096,
    waves: int = 2,
) -> CapacityResult:
    """Part 1: the largest token rate this process consumes while its gaps stay within 1 ms."""
    config = FakeServerConfig(
        model="perf", ttft_s=gap_s, gap_s=gap_s, batch_limit=max_concurrency * 2
    )
    cpus = _cpus()
    client_cpus = {cpus[0]} if cpus else None
    server_cpus = set(cpus[1:]) if len(cpus) > 1 else None
    with fake_server_process(config, cpus=server_cpus) as url:
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        points: list[CapacityPoint] = []
        good = 0
        bad = 0
        concurrency = start_concurrency
        while concurrency <= max_concurrency:
            point = _capacity_point(url, concurrency, gap_s, output_tokens, waves)
            points.append(point)
            if not point.kept_up:
                bad = concurrency
                break
            good = concurrency
            concurrency *= 2
        while good and bad and bad - good > max(1, good // 8):
            middle = (good + bad) // 2
            point = _capacity_point(url, middle, gap_s, output_tokens, waves)
            points.append(point)
            if point.kept_up:
                good = middle
            else:
                bad = middle
    kept = [p for p in points if p.kept_up]
    best = max(kept, key=lambda p: p.consumed_tokens_per_second) if kept else None
    return CapacityResult(gap_s, output_tokens, best, tuple(points))


def harness_point(
    endpoint: str,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    concurrency: int,
    num_requests: int,
    api: Api = "completions",
    timeout_s: float = 600.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Part 2 hook: the harness's figures of one closed-loop point against ``endpoint``, in
    the key names of ``vllm bench serve``'s result JSON (``output_throughput``,
    ``mean_ttft_ms``, ``mean_tpot_ms``, ``mean_itl_ms``, ``p99_ttft_ms``...)."""

    async def run() -> tuple[list[RequestResult], float]:
        results: list[RequestResult] = []
        async with closed_loop_pool(concurrency) as pool:
            await pool.warm(endpoint, concurrency)
            duration = await run_closed_loop(
                pool,
                Target(endpoint.rstrip("/"), model, timeout_s),
                make_requests(
                    fixed_workload(input_tokens, output_tokens, api=api), num_requests, seed=seed
                ),
                concurrency=concurrency,
                results=results,
            )
        return results, duration

    results, duration = asyncio.run(run())
    point = summarize(results, duration, concurrency=concurrency)
    figures: dict[str, Any] = {
        "completed": point.requests - point.errors,
        "failed": point.errors,
        "duration": point.duration_s,
        "total_output_tokens": point.output_tokens,
        "request_throughput": point.request_per_second,
        "output_throughput": point.output_tokens_per_second,
        "total_token_throughput": point.total_tokens_per_second,
    }
    for key, value in point.latency_ms.items():
        name, _ms, stat = key.split("_")  # "ttft_ms_p95" -> ttft, ms, p95
        figures[f"{'median' if stat == 'p50' else stat}_{name}_ms"] = value
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Harness capacity on one core (part 1).")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="server inter-token gap")
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--start-concurrency", type=int, default=16)
    parser.add_argument("--max-concurrency", type=int, default=4096)
    parser.add_argument(
        "--peer-tokens-per-second",
        type=float,
        default=None,
        help="the same figure measured with vllm bench serve (baseline of the ratio)",
    )
    args = parser.parse_args(argv)
    result = harness_capacity(
        gap_s=args.gap_ms / 1000,
        output_tokens=args.output_tokens,
        start_concurrency=args.start_concurrency,
        max_concurrency=args.max_concurrency,
    )
    print(f"server gap {args.gap_ms:g} ms, {args.output_tokens} tokens per request, cpus {_cpus()}")
    print(
        "concurrency  offered tok/s  consumed tok/s  server gap ms  mean gap ms  median  "
        "kept up  client CPU us/token"
    )
    for p in sorted(result.points, key=lambda p: p.concurrency):
        print(
            f"{p.concurrency:>11}  {p.offered_tokens_per_second:>13.0f}  "
            f"{p.consumed_tokens_per_second:>14.0f}  {p.server_gap_ms:>13.2f}  "
            f"{p.measured_gap_ms_mean:>11.2f}  {p.measured_gap_ms_median:>6.2f}  "
            f"{p.kept_up!s:>7}  {p.client_cpu_us_per_token:>19.1f}"
        )
    print(f"harness capacity: {result.tokens_per_second:.0f} tok/s on one core")
    cpu = [p.client_cpu_us_per_token for p in result.points if p.errors == 0]
    if cpu:
        per_token = statistics.median(cpu)
        print(
            f"client CPU per token: {per_token:.1f} us (median over points), so a dedicated "
            f"core would allow about {1e6 / per_token:.0f} tok/s"
        )
    if args.peer_tokens_per_second:
        ratio = result.tokens_per_second / args.peer_tokens_per_second
        print(
            f"vllm bench serve: {args.peer_tokens_per_second:.0f} tok/s; ratio harness/peer "
            f"{ratio:.2f} (goal >= 1)"
        )
    else:
        print("vllm bench serve: not measured here (pass --peer-tokens-per-second); ratio n/a")
    if result.best:
        print(f"best point: {asdict(result.best)}")


def _capacity_point(
    url: str, concurrency: int, gap_s: float, output_tokens: int, waves: int
) -> CapacityPoint:
    before = len(httpx.get(url + "/fake/stats").json()["streams"])

    cpu_s = 0.0

    async def run() -> tuple[list[RequestResult], float]:
        nonlocal cpu_s
        results: list[RequestResult] = []
        async with closed_loop_pool(concurrency) as pool:
            await pool.warm(url, concurrency)
            cpu_started = time.process_time()
            duration = await run_closed_loop(
                pool,
                Target(url, "perf", 600.0),
                make_requests(
                    fixed_workload(8, output_tokens, api="completions"), concurrency * waves
                ),
                concurrency=concurrency,
                results=results,
            )
            cpu_s = time.process_time() - cpu_started
        return results, duration

    results, duration = asyncio.run(run())
    streams = httpx.get(url + "/fake/stats").json()["streams"][before:]
    point = summarize(results, duration, concurrency=concurrency)
    gaps = [gap for r in results if r.ok for gap in r.itl_s]
    server_gap = statistics.mean(s["decode_s"] / (s["tokens"] - 1) for s in streams)
    mean_gap = statistics.mean(gaps) if gaps else float("inf")
    median_gap = statistics.median(gaps) if gaps else float("inf")
    kept_up = (
        point.errors == 0
        and abs(mean_gap - server_gap) <= MAX_GAP_ERROR_S
        and abs(median_gap - server_gap) <= MAX_GAP_ERROR_S
    )
    return CapacityPoint(
        concurrency=concurrency,
        offered_tokens_per_second=concurrency / gap_s,
        consumed_tokens_per_second=point.output_tokens_per_second,
        server_gap_ms=server_gap * 1000,
        measured_gap_ms_mean=mean_gap * 1000,
        measured_gap_ms_median=median_gap * 1000,
        errors=point.errors,
        kept_up=kept_up,
        client_cpu_us_per_token=cpu_s / max(point.output_tokens, 1) * 1e6,
    )


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


if __name__ == "__main__":
    main()
