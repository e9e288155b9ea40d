"""The harness against responses recorded from a real vLLM 0.32 server (scripts/
record_vllm_fixtures.py): stream chunks, usage, errors, /version, /metrics, and the result file
of `vllm bench serve`. The streams are replayed byte for byte over real HTTP."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from bench.client import Api, RequestSpec, error_from_body, send_request
from bench.importer import import_vllm_results
from bench.loadgen import ClientPool
from bench.peer import peer_figures
from bench.sse import EventKind, StreamEvent, parse_line
from bench.sweep import Slo
from oracle.db import transaction
from oracle.models import BenchmarkPointModel, BenchmarkRunModel

FIXTURES = Path(__file__).parent / "fixtures" / "vllm"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text())
STREAMS = [name for name in MANIFEST["files"] if name.endswith(".sse")]


def _events(name: str) -> list[StreamEvent]:
    lines = (FIXTURES / name).read_bytes().split(b"\n")
    return [event for line in lines if (event := parse_line(line)) is not None]


@pytest.mark.parametrize("name", STREAMS)
def test_recorded_stream_parses_to_the_requested_tokens_then_done(name: str) -> None:
    events = _events(name)
    requested = MANIFEST["files"][name]["request"]["max_tokens"]
    assert MANIFEST["files"][name]["status"] == 200
    assert events[-1].kind is EventKind.done
    assert all(event.kind is EventKind.chunk for event in events[:-1])
    # One chunk per token step; some steps carry empty text (a token that decodes to nothing
    # yet), so counting non-empty texts would undercount: the role-only chat opener is no step.
    steps = [event for event in events if event.has_choices and not event.role_only]
    assert len(steps) == requested
    with_usage = [event for event in events if event.completion_tokens is not None]
    if "stream_options" in MANIFEST["files"][name]["request"]:
        assert len(with_usage) == 1
        usage = with_usage[0]
        # The usage chunk comes last, with no choices (vLLM's shape).
        assert usage is events[-2]
        assert not usage.has_choices
        assert usage.completion_tokens == requested
        assert usage.prompt_tokens is not None and usage.prompt_tokens > 0
    else:
        assert with_usage == []


def test_real_completion_stream_has_token_steps_with_empty_text() -> None:
    # Recorded, not made up: SmolLM2 answered "\n", "", "ass", "istant", ... to this prompt.
    steps = [event for event in _events("completion_stream_usage.sse") if event.has_choices]
    assert any(event.text == "" for event in steps)
    assert all(not event.role_only for event in steps)


def test_chat_stream_opens_with_a_role_only_chunk() -> None:
    first = _events("chat_stream_usage.sse")[0]
    assert first.has_choices
    assert first.role_only
    assert first.text == ""


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("error_unknown_model.json", 404, "no-such-model` does not exist"),
        ("error_too_long.json", 400, "cannot be greater than max_model_len"),
    ],
)
def test_recorded_error_bodies_give_the_servers_message(name: str, status: int, words: str) -> None:
    assert MANIFEST["files"][name]["status"] == status
    assert words in error_from_body((FIXTURES / name).read_bytes())


def test_version_and_metrics_bodies() -> None:
    version = json.loads((FIXTURES / "version.json").read_text())["version"]
    assert version == MANIFEST["vllm_version"] == "0.32.0"
    families = {
        family.name: family
        for family in text_string_to_metric_families((FIXTURES / "metrics.txt").read_text())
    }
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting"):
        assert name in families
    assert "vllm:kv_cache_usage_perc" in families
    generated = sum(
        sample.value
        for sample in families["vllm:generation_tokens"].samples
        if sample.name.endswith("_total")
    )
    # The four 8-token streams were served before /metrics was read.
    assert generated >= 4 * 8


@pytest.mark.parametrize("name", STREAMS)
def test_client_times_a_replayed_real_stream(name: str, replay_server: str) -> None:
    request = MANIFEST["files"][name]["request"]
    api: Api = "chat" if "messages" in request else "completions"
    spec = RequestSpec("replayed prompt", 12, request["max_tokens"], api)

    async def one() -> Any:
        async with ClientPool(1) as pool:
            return await send_request(
                pool.client(0),
                base_url=f"{replay_server}/{name}",
                model="smollm2",
                spec=spec,
                timeout_s=10,
            )

    result = asyncio.run(one())
    assert result.ok, result.error
    assert result.output_tokens == request["max_tokens"]
    assert result.usage_reported == ("stream_options" in request)
    assert len(result.itl_s) == request["max_tokens"] - 1
    if not result.usage_reported:
        assert result.input_tokens == 12


def test_client_reports_the_real_unknown_model_error(replay_server: str) -> None:
    spec = RequestSpec("replayed prompt", 12, 8, "chat")

    async def one() -> Any:
        async with ClientPool(1) as pool:
            return await send_request(
                pool.client(0),
                base_url=f"{replay_server}/error_unknown_model.json",
                model="no-such-model",
                spec=spec,
                timeout_s=10,
            )

    result = asyncio.run(one())
    assert not result.ok
    assert result.status == 404
    assert result.error is not None and "does not exist" in result.error


def test_import_reads_the_recorded_bench_serve_result(engine: Engine) -> None:
    path = FIXTURES / "bench_serve_result.json"
    data = json.loads(path.read_text())
    figures = peer_figures(data)
    imported = import_vllm_results(
        engine,
        [path],
        instance_type="local-cpu",
        slo=Slo(ttft_p95_ms=5000.0, tpot_p95_ms=1000.0),
    )
    assert imported.model == data["model_id"] == "smollm2"
    assert imported.points == 1
    assert imported.goodput_tokens_per_second == pytest.approx(figures.output_tokens_per_second)
    with transaction(engine) as session:
        run = session.get(BenchmarkRunModel, imported.run_id)
        assert run is not None
        assert run.source == "imported"
        assert run.instance_type == "local-cpu"
        point = session.query(BenchmarkPointModel).filter_by(run_id=run.id).one()
        assert point.output_tokens_per_second == pytest.approx(data["output_throughput"])
        assert point.requests == data["completed"] + data["failed"]


@pytest.fixture(scope="module")
def replay_server() -> Iterator[str]:
    """A stdlib HTTP server on 127.0.0.1 that answers POST /<fixture>/v1/... with the fixture's
    bytes, status and content type, as recorded."""

    class Replay(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            name = self.path.strip("/").split("/")[0]
            info = MANIFEST["files"][name]
            body = (FIXTURES / name).read_bytes()
            self.send_response(info["status"])
            self.send_header("Content-Type", info["content_type"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
