"""One streaming request to an OpenAI-compatible server, timed token by token.

Timing definitions (those of ``vllm bench serve``, so that figures compare):
- TTFT: from the request being sent (its last byte written) to the first chunk carrying a
  choice (vLLM sends its chat role chunk together with the first token, after prefill);
- ITL: every gap between consecutive token chunks (chunks with a choice, except the chat
  role-only chunk; vLLM sends one per generated token, even when its text is empty);
- each chunk's time is that of the read that completed its line (taken as the read returns,
  before any parsing), so chunks that arrive in one read share a time and a gap of 0;
- latency: from the request being sent to the last token chunk;
- TPOT: (latency - TTFT) / (output tokens - 1);
- output tokens: ``usage.completion_tokens`` of the final usage chunk, else the count of token
  chunks (a server without usage support).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

import aiohttp
import httpx

from bench.sse import EventKind, error_from_body, parse_chunk, parse_line
from oracle.errors import InputError

Api = Literal["chat", "completions"]


class EndpointError(InputError):
    """The endpoint cannot be reached, or refuses the model."""


@dataclass(frozen=True)
class RequestSpec:
    """What to send: a prompt of about ``input_tokens`` tokens, and exactly ``output_tokens``."""

    prompt: str
    input_tokens: int
    output_tokens: int
    api: Api = "chat"


@dataclass
class RequestResult:
    ok: bool
    status: int | None
    error: str | None
    #: Seconds from the start of the point (the load generator's clock) to sending, and to the
    #: last token (or the failure).
    start_offset_s: float = 0.0
    end_offset_s: float = 0.0
    ttft_s: float | None = None
    latency_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    #: Whether the token counts came from a usage chunk (else: counted chunks, prompt estimate).
    usage_reported: bool = False
    malformed_lines: int = 0

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.latency_s is None or self.output_tokens < 2:
            return None
        return (self.latency_s - self.ttft_s) / (self.output_tokens - 1)


@dataclass(frozen=True)
class ServerInfo:
    base_url: str
    engine_version: str
    models: tuple[str, ...]


def request_url(base_url: str, api: Api) -> str:
    return base_url.rstrip("/") + ("/v1/chat/completions" if api == "chat" else "/v1/completions")


def request_body(model: str, spec: RequestSpec, *, include_usage: bool = True) -> dict[str, Any]:
    """The JSON body: streaming, usage requested, output length fixed by ``ignore_eos``."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": spec.output_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    if spec.api == "chat":
        body["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        body["prompt"] = spec.prompt
    return body


async def send_request(
    client: aiohttp.ClientSession,
    *,
    base_url: str,
    model: str,
    spec: RequestSpec,
    timeout_s: float,
    clock_origin: float | None = None,
) -> RequestResult:
    """Send one streaming request and time it; failures come back as ``ok=False``, never raise
    (except cancellation). ``client`` should trace with :func:`send_tracing` (a
    :class:`bench.loadgen.ClientPool` session does), else TTFT counts from before the send."""
    url = request_url(base_url, spec.api)
    body = request_body(model, spec)
    started = time.perf_counter()
    origin = clock_origin if clock_origin is not None else started
    result = RequestResult(ok=False, status=None, error=None, start_offset_s=started - origin)
    # Set by the trace at each body chunk written: TTFT counts from the moment the request is
    # on the wire, so the client's own time to build and queue it (milliseconds on a busy
    # client core) is not the server's.
    sent_at = [started]
    timeout = aiohttp.ClientTimeout(
        total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
    )
    try:
        async with client.post(
            url,
            json=body,
            timeout=timeout,
            # The body is read raw (see _read_stream): ask that no proxy compresses it.
            headers={"accept-encoding": "identity"},
            trace_request_ctx=sent_at,
        ) as response:
            result.status = response.status
            if response.status != 200:
                result.error = f"HTTP {response.status}: " + error_from_body(await response.read())
            else:
                await _read_stream(response, result, sent_at[0])
    except (TimeoutError, aiohttp.ServerTimeoutError):
        result.error = f"timed out after {timeout_s:g} s"
    except aiohttp.ClientConnectorError as error:
        result.error = f"cannot connect: {error}"
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientOSError,
    ) as e:
        result.error = f"connection dropped: {e or type(e).__name__}"
    except aiohttp.ClientError as error:
        result.error = f"{type(error).__name__}: {error}"
    if result.ok and not result.usage_reported:
        result.input_tokens = spec.input_tokens
    if result.ok and result.latency_s is not None:
        result.end_offset_s = sent_at[0] + result.latency_s - origin
    else:
        result.end_offset_s = time.perf_counter() - origin
    return result


def send_tracing() -> aiohttp.TraceConfig:
    """The trace that lets :func:`send_request` time TTFT from the request's last byte written:
    pass it in ``trace_configs`` of the session."""
    config = aiohttp.TraceConfig()
    config.on_request_chunk_sent.append(_on_chunk_sent)
    return config


async def probe_endpoint(base_url: str, *, model: str, timeout_s: float = 5.0) -> ServerInfo:
    """Check that ``base_url`` answers and serves ``model``; read the engine version.

    Raises :class:`EndpointError` with a one-line message when the server cannot be reached
    within ``timeout_s`` or does not serve the model.
    """
    root = base_url.rstrip("/")
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            models_response = await client.get(root + "/v1/models")
        except httpx.TimeoutException:
            raise EndpointError(
                f"{root} did not answer within {timeout_s:g} s; check --endpoint and that the "
                "server is up"
            ) from None
        except httpx.HTTPError as error:
            raise EndpointError(
                f"cannot reach {root} ({type(error).__name__}: {error or 'no answer'}); check "
                "--endpoint and that the server is up"
            ) from None
        models: tuple[str, ...] = ()
        if models_response.status_code == 200:
            models = _model_ids(models_response)
        if models and model not in models:
            raise EndpointError(
                f"{root} does not serve model {model!r} (it serves {', '.join(models)}); "
                "pass one of those as --model"
            )
        version = ""
        try:
            version_response = await client.get(root + "/version")
            if version_response.status_code == 200:
                version = str(version_response.json().get("version", ""))
        except (httpx.HTTPError, ValueError, AttributeError):
            version = ""
    return ServerInfo(base_url=root, engine_version=version, models=models)


async def _read_stream(
    response: aiohttp.ClientResponse, result: RequestResult, started: float
) -> None:
    last_token_at: float | None = None
    counted_tokens = 0
    finished = False
    pending = b""
    # The body's lines are split by hand from each read (one or more whole or partial lines):
    # the clock is read once per read, as soon as it returns, so that every token of a read is
    # stamped when it arrived rather than after the parsing of those before it. Requests ask
    # for an uncompressed body.
    async for chunk in response.content.iter_any():
        now = time.perf_counter()
        if finished:
            # Read on to the end of the body (nothing should follow [DONE]): a response left
            # half read cannot go back to the pool, and each request would open a connection.
            continue
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data: {"):
                # The common case (one chunk object per line), without parse_line's decoding.
                try:
                    data = json.loads(line[6:])
                except ValueError:
                    event = parse_line(line)
                else:
                    event = parse_chunk(data) if isinstance(data, dict) else parse_line(line)
            else:
                event = parse_line(line)
            if event is None or event.kind is EventKind.comment:
                continue
            if event.kind is EventKind.done:
                finished = True
                break
            if event.kind is EventKind.malformed:
                result.malformed_lines += 1
                continue
            if event.kind is EventKind.error:
                result.error = f"error event mid stream: {event.error}"
                return
            if event.has_choices:
                if result.ttft_s is None:
                    result.ttft_s = now - started
                if not event.role_only:
                    counted_tokens += 1
                    if last_token_at is not None:
                        result.itl_s.append(now - last_token_at)
                    last_token_at = now
            if event.completion_tokens is not None:
                result.output_tokens = event.completion_tokens
                result.input_tokens = event.prompt_tokens or 0
                result.usage_reported = True
    if not finished and pending.strip():
        # A last line without a newline: [DONE] or a final chunk before the body's end.
        event = parse_line(pending)
        if event is not None and event.kind is EventKind.done:
            finished = True
        elif event is not None and event.kind is EventKind.malformed:
            result.malformed_lines += 1
    if not finished:
        result.error = "stream ended before [DONE] (connection dropped)"
        return
    if last_token_at is None:
        result.error = "stream finished without any generated token"
        return
    result.latency_s = last_token_at - started
    if not result.usage_reported:
        result.output_tokens = counted_tokens
    result.ok = True


async def _on_chunk_sent(
    _session: aiohttp.ClientSession,
    context: SimpleNamespace,
    _params: aiohttp.TraceRequestChunkSentParams,
) -> None:
    sent_at = context.trace_request_ctx
    if isinstance(sent_at, list):
        sent_at[0] = time.perf_counter()


def _model_ids(response: httpx.Response) -> tuple[str, ...]:
    try:
        data = response.json().get("data", [])
        return tuple(str(item["id"]) for item in data if isinstance(item, dict) and "id" in item)
    except (ValueError, AttributeError, KeyError):
        return ()
