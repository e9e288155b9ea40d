"""The fake vLLM server as the service's tests use it: metadata endpoints, metrics, batching,
non-streaming answers; and the figures hook of the harness benchmark."""

from __future__ import annotations

import asyncio
import re

import httpx

from bench.client import RequestSpec, request_body
from bench.fakeserver import FakeServer
from benchmarks.harness import harness_point
from tests.bench.conftest import MODEL


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_metadata_endpoints(fake_server: FakeServer) -> None:
    with httpx.Client(base_url=fake_server.url) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/version").json() == {"version": "0.0.0+fake"}
        models = client.get("/v1/models").json()
        assert models["object"] == "list" and models["data"][0]["id"] == MODEL
        assert client.get("/nope").status_code == 404


def test_metrics_count_tokens_and_running_requests(fake_server: FakeServer) -> None:
    fake_server.reconfigure(gap_s=0.01)

    async def go() -> tuple[str, str]:
        async with httpx.AsyncClient(base_url=fake_server.url) as client:
            body = request_body(MODEL, RequestSpec("a b", 2, 20, "completions"))
            streams = [
                asyncio.create_task(client.post("/v1/completions", json=body)) for _ in range(3)
            ]
            while fake_server.counters.generation_tokens < 3:
                await asyncio.sleep(0.002)
            during = (await client.get("/metrics")).text
            await asyncio.gather(*streams)
            return during, (await client.get("/metrics")).text

    during, after = asyncio.run(go())
    assert metric(during, "vllm:num_requests_running") == 3
    assert metric(after, "vllm:num_requests_running") == 0
    assert metric(after, "vllm:generation_tokens_total") == 60
    assert metric(after, "vllm:prompt_tokens_total") == 6


def test_requests_beyond_the_batch_limit_wait(fake_server: FakeServer) -> None:
    # Each request holds its slot for 20 gaps (1 s), far longer than the ten take to arrive on a
    # busy machine, so exactly the two beyond the 8 slots (fixed when the fixture's server
    # starts) wait, for about a second.
    fake_server.reconfigure(gap_s=0.05)

    async def go() -> None:
        async with httpx.AsyncClient(base_url=fake_server.url) as client:
            body = request_body(MODEL, RequestSpec("a", 1, 20, "chat"))
            tasks = [
                asyncio.create_task(client.post("/v1/chat/completions", json=body))
                for _ in range(10)
            ]
            await asyncio.gather(*tasks)

    asyncio.run(go())
    queued = [s for s in fake_server.stats()["streams"] if s["queue_s"] > 0.1]
    assert len(queued) == 2


def test_non_streaming_answers(fake_server: FakeServer) -> None:
    with httpx.Client(base_url=fake_server.url) as client:
        chat = client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        ).json()
        assert chat["choices"][0]["message"]["content"] == "tok tok tok"
        assert chat["usage"] == {"prompt_tokens": 1, "total_tokens": 4, "completion_tokens": 3}
        plain = client.post("/v1/completions", json={"model": MODEL, "prompt": "x y"}).json()
        assert plain["usage"]["completion_tokens"] == 16


def test_harness_point_speaks_vllm_bench_serve_keys(fake_server: FakeServer) -> None:
    figures = harness_point(
        fake_server.url,
        MODEL,
        input_tokens=8,
        output_tokens=10,
        concurrency=2,
        num_requests=4,
    )
    assert figures["completed"] == 4 and figures["failed"] == 0
    assert figures["total_output_tokens"] == 40
    for key in ("output_throughput", "mean_ttft_ms", "median_tpot_ms", "p99_itl_ms"):
        assert figures[key] > 0, key
