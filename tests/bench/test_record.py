"""Recording runs in the oracle (both backends) and the EC2 instance metadata lookup."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy.engine import Engine

from bench.loadgen import PointMetrics
from bench.record import RunMeta, instance_type_from_imds, list_runs, record_run
from bench.sweep import Slo, SweepState
from oracle.db import transaction


def point(concurrency: int, rate: float, passed: bool) -> PointMetrics:
    return PointMetrics(
        concurrency=concurrency,
        request_rate=None,
        requests=8,
        errors=0,
        error_rate=0.0,
        duration_s=1.0,
        request_per_second=8.0,
        output_tokens_per_second=rate,
        total_tokens_per_second=rate * 2,
        latency_ms={"ttft_ms_p95": 100.0, "tpot_ms_p95": 20.0},
        passed=passed,
    )


META = RunMeta(
    model="m",
    instance_type="g6.xlarge",
    workload_id="chat-mix-v1",
    slo=Slo(),
    engine_version="0.32.0",
    endpoint="http://127.0.0.1:8000",
    started_at=datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
    finished_at=datetime(2026, 11, 28, 10, 5, tzinfo=UTC),
)


def test_record_complete_run_with_points(engine: Engine) -> None:
    state = SweepState(
        points=[point(2, 200.0, True), point(1, 100.0, True), point(4, 250.0, False)],
        complete=True,
    )
    run_id = record_run(engine, meta=META, state=state)
    with transaction(engine) as session:
        (run,) = list_runs(session, model="m")
        assert run.id == run_id
        assert run.status == "complete" and run.source == "measured"
        assert run.goodput_tokens_per_second == 200.0  # the best passing point, not 250
        assert [p.concurrency for p in run.points] == [1, 2, 4]
        assert [p.passed for p in run.points] == [True, True, False]
        assert run.points[0].latency_ms == {"ttft_ms_p95": 100.0, "tpot_ms_p95": 20.0}
        assert run.details["slo"]["ttft_p95_ms"] == 2000.0
        assert run.observed_at == META.finished_at
        assert run.engine_version == "0.32.0"
        assert list_runs(session, model="other") == []


def test_record_incomplete_run_keeps_partial_point(engine: Engine) -> None:
    partial = point(4, 50.0, False)
    partial.partial = True
    state = SweepState(points=[point(1, 100.0, True)], partial_point=partial, complete=False)
    run_id = record_run(engine, meta=META, state=state)
    with transaction(engine) as session:
        (run,) = list_runs(session)
        assert run.id == run_id and run.status == "incomplete"
        assert run.details["partial_point"]["concurrency"] == 4
        assert run.details["partial_point"]["partial"] is True
        assert len(run.points) == 1


class _Imds(BaseHTTPRequestHandler):
    token = "tok-123"

    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token" and self.headers.get(
            "X-aws-ec2-metadata-token-ttl-seconds"
        )
        self._answer(200 if ok else 400, self.token if ok else "")

    def do_GET(self) -> None:
        ok = (
            self.path == "/latest/meta-data/instance-type"
            and self.headers.get("X-aws-ec2-metadata-token") == self.token
        )
        self._answer(200 if ok else 401, "g6e.2xlarge\n" if ok else "")

    def _answer(self, status: int, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def imds_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_imdsv2_token_then_instance_type(imds_url: str) -> None:
    assert instance_type_from_imds(base_url=imds_url) == "g6e.2xlarge"


def test_imds_absent_gives_none_quickly() -> None:
    # Nothing listens on port 9 of the loopback: refused at once.
    assert instance_type_from_imds(base_url="http://127.0.0.1:9", timeout_s=0.5) is None
