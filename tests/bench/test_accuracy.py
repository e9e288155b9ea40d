"""The harness against a server of known speed: its figures agree with the truth within 5%.

The fake server runs in its own process (no GIL shared with the client). A request of
``OUTPUT`` tokens, once admitted to one of ``BATCH`` slots, gets its first token ``TTFT_S``
later and then one every ``GAP_S``; beyond ``BATCH`` requests queue. So at concurrency
c <= BATCH the output rate is c * OUTPUT / latency, and beyond BATCH queued requests wait a
whole request's latency, which breaks a TTFT SLO set between the two: the true goodput is
BATCH * OUTPUT / latency.

"Truth" is what the server actually did, by its own clock (``GET /fake/stats``): tokens over
the span from the point's first arrival to its last token, and its own per-request times. On a
busy machine a sleeping server wakes a few milliseconds late, and that is no error of the
harness; that the server keeps to its model (c * OUTPUT / latency) is checked separately.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.client import RequestResult
from bench.fakeserver import FakeServerConfig, fake_server_process
from bench.loadgen import (
    PointMetrics,
    Target,
    closed_loop_pool,
    run_closed_loop,
    summarize,
)
from bench.sweep import Slo, SweepOptions, SweepState, run_sweep
from bench.workloads import fixed_workload, make_requests
from tests.bench.conftest import MODEL

TTFT_S = 0.2
GAP_S = 0.01
BATCH = 4
OUTPUT = 30
TOLERANCE = 0.05
WORKLOAD = fixed_workload(16, OUTPUT, api="completions")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    config = FakeServerConfig(model=MODEL, ttft_s=TTFT_S, gap_s=GAP_S, batch_limit=BATCH)
    with fake_server_process(config) as url:
        yield url


@pytest.fixture(scope="module")
def points(server_url: str) -> dict[int, tuple[PointMetrics, list[dict[str, Any]]]]:
    """Closed-loop points at 1, 2 and 4 (two waves each) with the server's own record."""
    measured: dict[int, tuple[PointMetrics, list[dict[str, Any]]]] = {}
    seen = 0
    for concurrency in (1, 2, BATCH):
        results: list[RequestResult] = []

        async def run(c: int = concurrency, into: list[RequestResult] = results) -> float:
            async with closed_loop_pool(c) as pool:
                await pool.warm(server_url, c)
                return await run_closed_loop(
                    pool,
                    Target(server_url, MODEL),
                    make_requests(WORKLOAD, 2 * c),
                    concurrency=c,
                    results=into,
                )

        duration = asyncio.run(run())
        streams = httpx.get(server_url + "/fake/stats").json()["streams"]
        measured[concurrency] = (
            summarize(results, duration, concurrency=concurrency),
            streams[seen:],
        )
        seen = len(streams)
    return measured


@pytest.fixture(scope="module")
def swept(server_url: str) -> Iterator[tuple[SweepState, list[dict[str, Any]]]]:
    before = len(httpx.get(server_url + "/fake/stats").json()["streams"])
    state = asyncio.run(
        run_sweep(
            Target(server_url, MODEL),
            WORKLOAD,
            Slo(ttft_p95_ms=2 * TTFT_S * 1000, tpot_p95_ms=4 * GAP_S * 1000),
            SweepOptions(
                max_concurrency=6, requests_per_point=1, min_waves=1, min_window_requests=0
            ),
        )
    )
    streams = httpx.get(server_url + "/fake/stats").json()["streams"][before:]
    yield state, streams


def service_latency_s(streams: list[dict[str, Any]]) -> float:
    """Mean seconds from admission to the last token, as the server did it."""
    return statistics.mean(s["ttft_s"] - s["queue_s"] + s["decode_s"] for s in streams)


def served_rate(streams: list[dict[str, Any]]) -> float:
    """Output tokens per second the server delivered over the point's span."""
    span = max(s["finished_at"] for s in streams) - min(s["arrived_at"] for s in streams)
    return sum(s["tokens"] for s in streams) / span


@pytest.mark.parametrize("concurrency", [1, 2, BATCH])
def test_output_rate(points: dict, concurrency: int) -> None:
    point, streams = points[concurrency]
    assert point.errors == 0 and point.requests == 2 * concurrency
    assert point.output_tokens_per_second == pytest.approx(served_rate(streams), rel=TOLERANCE)
    assert point.output_tokens == sum(s["tokens"] for s in streams)
    # The server kept to its model: each admitted request took TTFT + (OUTPUT - 1) * GAP.
    model_latency_s = TTFT_S + (OUTPUT - 1) * GAP_S
    assert service_latency_s(streams) == pytest.approx(model_latency_s, rel=TOLERANCE)


@pytest.mark.parametrize("concurrency", [1, 2, BATCH])
def test_ttft_tpot_and_itl(points: dict, concurrency: int) -> None:
    point, streams = points[concurrency]
    true_ttft_ms = statistics.mean(s["ttft_s"] for s in streams) * 1000
    true_tpot_ms = statistics.mean(s["decode_s"] / (s["tokens"] - 1) for s in streams) * 1000
    assert point.latency_ms["ttft_ms_mean"] == pytest.approx(true_ttft_ms, rel=TOLERANCE)
    assert point.latency_ms["tpot_ms_mean"] == pytest.approx(true_tpot_ms, rel=TOLERANCE)
    assert point.latency_ms["itl_ms_mean"] == pytest.approx(true_tpot_ms, rel=TOLERANCE)


def test_goodput_is_the_batch_limit_rate(swept: tuple[SweepState, list]) -> None:
    state, streams = swept
    assert state.complete
    best = state.best_point
    assert best is not None and best.concurrency == BATCH
    # Points ran in order (1, 2, 4, 6, 5), one request per slot: slice the server's record.
    order = [p.concurrency or 0 for p in state.points]
    assert order == [1, 2, 4, 6, 5]
    start = sum(order[: order.index(BATCH)])
    best_streams = streams[start : start + BATCH]
    assert state.goodput_tokens_per_second == pytest.approx(
        served_rate(best_streams), rel=TOLERANCE
    )
    assert state.goodput_tokens_per_second == pytest.approx(
        # (looser: this checks the fake server kept time on a busy machine, not the harness)
        BATCH * OUTPUT / service_latency_s(best_streams),
        rel=2 * TOLERANCE,
    )
    # Beyond the batch limit requests queue and the TTFT SLO fails; bisection found the edge.
    assert [p.concurrency for p in state.curve()] == [1, 2, 4, 5, 6]
    assert [p.passed for p in state.curve()] == [True, True, True, False, False]
