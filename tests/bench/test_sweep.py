"""The sweep and the load generator: faults are counted and the run goes on, open loop,
bisection, cancellation keeps partial results, and the per-point statistics."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.client import RequestResult
from bench.fakeserver import FakeServer
from bench.loadgen import PointMetrics, Target, summarize
from bench.sweep import Slo, SweepOptions, SweepProgress, SweepState, run_sweep
from bench.workloads import fixed_workload
from tests.bench.conftest import MODEL

WORKLOAD = fixed_workload(8, 8)
LOOSE = Slo(ttft_p95_ms=10_000, tpot_p95_ms=10_000, max_error_rate=0.5)


def sweep(server: FakeServer, slo: Slo, options: SweepOptions) -> SweepState:
    """The sweep, each point sending exactly ``requests_per_point`` (no window sizing)."""
    options = dataclasses.replace(options, min_window_requests=0)
    return asyncio.run(run_sweep(Target(server.url, MODEL, 10), WORKLOAD, slo, options))


def test_faults_are_counted_and_the_sweep_continues(fake_server: FakeServer) -> None:
    # Requests 3, 7, 11, 15 of each 16 are answered 500; of the odd others (1, 5, 9, 13) the
    # connection drops mid stream: 8 of 16 fail. Each stream that starts has a malformed line.
    fake_server.reconfigure(rate_5xx=0.25, drop_rate=0.5, malformed_line=True)
    tolerant = Slo(ttft_p95_ms=10_000, tpot_p95_ms=10_000, max_error_rate=0.6)
    state = sweep(fake_server, tolerant, SweepOptions(max_concurrency=4, requests_per_point=16))
    assert state.complete
    assert [p.concurrency for p in state.curve()] == [1, 2, 4]
    for point in state.points:
        assert point.requests == 16
        assert point.errors == 8
        assert point.error_rate == pytest.approx(0.5)
        assert sum(point.error_kinds.values()) == 8
        assert any(kind.startswith("HTTP 500") for kind in point.error_kinds)
        assert any("dropped" in kind for kind in point.error_kinds)
        assert point.malformed_lines == 12
        assert point.output_tokens == 8 * 8  # only successful requests count
        assert point.passed
    assert state.goodput_tokens_per_second > 0
    assert fake_server.counters.by_fault == {"5xx": 12, "drop": 12}


def test_error_rate_at_the_limit_fails_and_below_passes(fake_server: FakeServer) -> None:
    fake_server.reconfigure(rate_4xx=0.125)
    slo = Slo(ttft_p95_ms=10_000, tpot_p95_ms=10_000, max_error_rate=0.2)
    state = sweep(fake_server, slo, SweepOptions(max_concurrency=2, requests_per_point=8))
    assert [p.errors for p in state.curve()] == [1, 1]
    assert all(p.passed for p in state.points)
    assert state.goodput_tokens_per_second == max(p.goodput_tokens_per_second for p in state.points)


def test_bisection_between_last_pass_and_first_fail(fake_server: FakeServer) -> None:
    # 8 slots; beyond 8 a request queues for a whole request (20 ms + 7 * 25 ms), which lifts
    # the TTFT p95 of any point above 8 far over the 100 ms SLO. (Requests last long against
    # the client's own sending time, so that a busy client still has them all in flight.)
    fake_server.reconfigure(ttft_s=0.02, gap_s=0.025, batch_limit=8)
    slo = Slo(ttft_p95_ms=100, tpot_p95_ms=1000)
    options = SweepOptions(max_concurrency=16, requests_per_point=1, min_waves=1, resolution=0)
    state = sweep(fake_server, slo, options)
    levels = [p.concurrency or 0 for p in state.points]
    passing = [p.concurrency or 0 for p in state.points if p.passed]
    failing = [p.concurrency or 0 for p in state.points if not p.passed]
    assert passing and failing
    assert all(level <= 8 for level in passing)
    assert all(not p.passed for p in state.points if (p.concurrency or 0) > 8)
    # Doubling up to the first failure, then bisection down to adjacent levels.
    first_fail = levels.index(min(level for level in levels if level in failing))
    ladder = levels[: levels.index(failing[0]) + 1]
    assert ladder == [2**k for k in range(len(ladder))]
    assert first_fail >= 0
    assert max(passing) + 1 == min(failing)
    assert len(levels) == len(set(levels))
    assert state.goodput_tokens_per_second == max(
        p.goodput_tokens_per_second for p in state.points if p.passed
    )
    assert state.curve() == sorted(state.points, key=lambda p: p.concurrency or 0)


def test_open_loop_rates(fake_server: FakeServer) -> None:
    options = SweepOptions(mode="rate", start_rate=50, max_rate=200, requests_per_point=6)
    state = sweep(fake_server, LOOSE, options)
    assert [p.request_rate for p in state.curve()] == [50, 100, 200]
    assert all(p.concurrency is None and p.requests == 6 and p.errors == 0 for p in state.points)
    assert state.goodput_tokens_per_second > 0


def test_cancellation_keeps_finished_points_and_the_partial_point(
    fake_server: FakeServer,
) -> None:
    # Requests of about 0.1 s, so that the cancellation lands inside the third point.
    fake_server.reconfigure(gap_s=0.015)
    state = SweepState()
    done: list[PointMetrics] = []
    results: list[RequestResult] = []

    async def go() -> None:
        progress = SweepProgress(on_point_done=done.append, on_result=results.append)
        task = asyncio.create_task(
            run_sweep(
                Target(fake_server.url, MODEL, 10),
                WORKLOAD,
                LOOSE,
                SweepOptions(max_concurrency=64, requests_per_point=8, min_window_requests=0),
                state=state,
                progress=progress,
            )
        )
        while len(done) < 2 or len(results) < 16 + 3:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert not state.complete
    assert [p.concurrency for p in state.points] == [1, 2]
    assert state.partial_point is not None
    assert state.partial_point.partial
    assert state.partial_point.concurrency == 4
    assert 3 <= state.partial_point.requests < 8


def ok_result(ttft: float, gaps: list[float], tokens: int) -> RequestResult:
    return RequestResult(
        ok=True,
        status=200,
        error=None,
        ttft_s=ttft,
        latency_s=ttft + sum(gaps),
        itl_s=gaps,
        input_tokens=10,
        output_tokens=tokens,
    )


def test_summarize_known_values() -> None:
    results = [
        ok_result(0.1, [0.01] * 9, 10),
        ok_result(0.3, [0.02] * 9, 10),
        RequestResult(ok=False, status=500, error="HTTP 500: boom"),
    ]
    point = summarize(results, 2.0, concurrency=2)
    assert point.requests == 3 and point.errors == 1
    assert point.error_rate == pytest.approx(1 / 3)
    assert point.output_tokens_per_second == pytest.approx(10.0)
    assert point.total_tokens_per_second == pytest.approx(20.0)
    assert point.request_per_second == pytest.approx(1.0)
    assert point.latency_ms["ttft_ms_mean"] == pytest.approx(200)
    assert point.latency_ms["tpot_ms_mean"] == pytest.approx(15)
    assert point.latency_ms["itl_ms_p50"] == pytest.approx(15)
    assert point.error_kinds == {"HTTP 500: boom": 1}
    assert point.to_dict()["ttft_ms_p95"] == pytest.approx(290)


@given(
    st.lists(
        st.tuples(
            st.floats(0.001, 5),
            st.lists(st.floats(0.0001, 1), min_size=1, max_size=20),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 10),
)
def test_summarize_invariants(requests: list[tuple[float, list[float]]], failures: int) -> None:
    results = [ok_result(ttft, gaps, len(gaps) + 1) for ttft, gaps in requests]
    results += [RequestResult(ok=False, status=None, error="x") for _ in range(failures)]
    point = summarize(results, 10.0)
    assert point.errors == failures and 0 <= point.error_rate <= 1
    assert point.output_tokens == sum(len(gaps) + 1 for _ttft, gaps in requests)
    for name in ("ttft", "tpot", "itl", "e2el"):
        p50, p90, p95, p99 = (point.latency_ms[f"{name}_ms_p{q}"] for q in (50, 90, 95, 99))
        assert p50 <= p90 <= p95 <= p99 + 1e-9
        low = min(v for k, v in point.latency_ms.items() if k.startswith(name))
        assert low >= 0


@given(st.floats(1, 500), st.floats(1, 500), st.floats(0, 1))
def test_slo_pass_rule(ttft_p95: float, tpot_p95: float, error_rate: float) -> None:
    slo = Slo(ttft_p95_ms=100, tpot_p95_ms=50, max_error_rate=0.1)
    requests = 100
    errors = round(error_rate * requests)
    point = PointMetrics(
        concurrency=1,
        request_rate=None,
        requests=requests,
        errors=errors,
        error_rate=errors / requests,
        duration_s=1,
        request_per_second=1,
        output_tokens_per_second=1,
        total_tokens_per_second=1,
        latency_ms={"ttft_ms_p95": ttft_p95, "tpot_ms_p95": tpot_p95},
    )
    expected = (
        ttft_p95 <= 100 and tpot_p95 <= 50 and errors < requests and (errors == 0 or errors < 10)
    )
    assert slo.passes(point) is expected
