"""The streaming client against the fake server: formats, token counts and faults."""

from __future__ import annotations

import asyncio

import pytest

from bench.client import EndpointError, RequestResult, RequestSpec, probe_endpoint, send_request
from bench.fakeserver import FakeServer
from bench.loadgen import ClientPool
from tests.bench.conftest import FIXTURES, MODEL


def send(server: FakeServer, spec: RequestSpec, *, model: str = MODEL) -> RequestResult:
    async def go() -> RequestResult:
        async with ClientPool(1) as pool:
            return await send_request(
                pool.client(0), base_url=server.url, model=model, spec=spec, timeout_s=10
            )

    return asyncio.run(go())


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_tokens_from_usage_and_timings(fake_server: FakeServer, api: str) -> None:
    result = send(fake_server, RequestSpec("one two three four", 4, 12, api))  # type: ignore[arg-type]
    assert result.ok, result.error
    assert result.status == 200
    assert result.usage_reported
    assert (result.input_tokens, result.output_tokens) == (4, 12)
    assert len(result.itl_s) == 11
    assert result.ttft_s is not None and result.latency_s is not None
    assert result.latency_s >= result.ttft_s
    tpot = result.tpot_s
    assert tpot is not None
    assert tpot == pytest.approx((result.latency_s - result.ttft_s) / 11)


def test_server_without_usage_falls_back_to_counting_chunks(fake_server: FakeServer) -> None:
    fake_server.reconfigure(no_usage=True, keepalive_every=3)
    result = send(fake_server, RequestSpec("a b c", 3, 9, "chat"))
    assert result.ok, result.error
    assert not result.usage_reported
    assert result.output_tokens == 9
    assert result.input_tokens == 3  # the workload's own estimate


def test_error_event_mid_stream_is_an_error(fake_server: FakeServer) -> None:
    fake_server.reconfigure(error_event_rate=1.0)
    result = send(fake_server, RequestSpec("a", 1, 10, "completions"))
    assert not result.ok
    assert "error event mid stream" in (result.error or "")
    assert "injected engine error" in (result.error or "")


def test_dropped_connection_is_an_error(fake_server: FakeServer) -> None:
    fake_server.reconfigure(drop_rate=1.0)
    result = send(fake_server, RequestSpec("a", 1, 10, "chat"))
    assert not result.ok
    assert "dropped" in (result.error or "")


@pytest.mark.parametrize(("switch", "status"), [("rate_4xx", 400), ("rate_5xx", 500)])
def test_http_errors_carry_status_and_message(
    fake_server: FakeServer, switch: str, status: int
) -> None:
    fake_server.reconfigure(**{switch: 1.0})
    result = send(fake_server, RequestSpec("a", 1, 4, "chat"))
    assert not result.ok
    assert result.status == status
    assert result.error is not None and result.error.startswith(f"HTTP {status}: injected")


def test_malformed_lines_are_counted_and_the_request_still_succeeds(
    fake_server: FakeServer,
) -> None:
    fake_server.reconfigure(malformed_line=True)
    result = send(fake_server, RequestSpec("a", 1, 6, "completions"))
    assert result.ok, result.error
    assert result.malformed_lines == 1
    assert result.output_tokens == 6


def test_rejected_model_name(fake_server: FakeServer) -> None:
    result = send(fake_server, RequestSpec("a", 1, 4, "chat"), model="other")
    assert not result.ok and result.status == 404
    assert "does not exist" in (result.error or "")
    with pytest.raises(EndpointError, match="does not serve model 'other'"):
        asyncio.run(probe_endpoint(fake_server.url, model="other"))


def test_probe_reads_version_and_models(fake_server: FakeServer) -> None:
    info = asyncio.run(probe_endpoint(fake_server.url + "/", model=MODEL))
    assert info.engine_version == "0.0.0+fake"
    assert info.models == (MODEL,)
    assert info.base_url == fake_server.url


def test_unreachable_endpoint_is_a_one_line_error() -> None:
    with pytest.raises(EndpointError) as caught:
        asyncio.run(probe_endpoint("http://127.0.0.1:9", model=MODEL, timeout_s=2))
    message = str(caught.value)
    assert "cannot reach http://127.0.0.1:9" in message
    assert "\n" not in message


def test_unanswering_endpoint_times_out_with_a_clear_error() -> None:
    async def go() -> None:
        # A listener that accepts and never answers.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await probe_endpoint(f"http://127.0.0.1:{port}", model=MODEL, timeout_s=0.3)

    with pytest.raises(EndpointError, match=r"did not answer within 0\.3 s"):
        asyncio.run(go())


@pytest.mark.parametrize(
    ("name", "api", "tokens", "usage"),
    [
        ("chat_stream.sse", "chat", 4, True),
        ("completion_stream.sse", "completions", 3, True),
        ("chat_no_usage_keepalive.sse", "chat", 3, False),
        ("completion_malformed.sse", "completions", 2, True),
        ("vllm/chat_stream_usage.sse", "chat", 8, True),
        ("vllm/chat_stream_no_usage.sse", "chat", 8, False),
        ("vllm/completion_stream_usage.sse", "completions", 8, True),
        ("vllm/completion_stream_no_usage.sse", "completions", 8, False),
    ],
)
def test_replayed_fixture_streams(
    fake_server: FakeServer, name: str, api: str, tokens: int, usage: bool
) -> None:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"{path} is not recorded yet")
    fake_server.reconfigure(replay_path=str(path), reject_unknown_model=False)
    result = send(fake_server, RequestSpec("x", 1, tokens, api))  # type: ignore[arg-type]
    assert result.ok, result.error
    assert result.output_tokens == tokens
    assert result.usage_reported is usage
    assert len(result.itl_s) == tokens - 1


def test_replayed_error_event_fails_the_request(fake_server: FakeServer) -> None:
    fake_server.reconfigure(replay_path=str(FIXTURES / "chat_error_midstream.sse"))
    result = send(fake_server, RequestSpec("x", 1, 4, "chat"))
    assert not result.ok
    assert "maximum model length" in (result.error or "")
