"""An OpenAI-compatible streaming server with known timing, for tests and dry runs.

It behaves like a vLLM replica whose speed is set, not measured: a request waits for one of
``batch_limit`` slots (beyond that it queues, as in vLLM's scheduler), then its first token
comes ``ttft_s`` after admission and every further token ``gap_s`` after the previous one.
Token deadlines are absolute, so event-loop lag never accumulates. So with ``c`` concurrent
requests of ``n`` output tokens and ``c <= batch_limit`` the true output rate is
``c * n / (ttft_s + (n - 1) * gap_s)``.

The timing model may also depend on the load and on the request's size (a per-bucket model):
a request of ``i`` prompt tokens gets its first token ``ttft_s + prefill_s_per_token * i``
after admission, and each further token ``gap_s * (1 + gap_growth_per_open * (m - 1)) *
(1 + gap_growth_per_prompt_token * i)`` after the previous one, with ``m`` the requests admitted
at that moment (vLLM's batch). :func:`true_output_tokens_per_second` gives the steady rate.

It speaks what the harness and the service use: ``POST /v1/chat/completions`` and
``/v1/completions`` (streaming or not, usage chunks on request), ``GET /v1/models``,
``/version``, ``/health`` and a vLLM-like Prometheus ``/metrics``. Switches inject faults.
A prompt's token count is its count of whitespace-separated words.

Run it in a thread (``with FakeServer(config) as server: server.url``) or as a process:
``python -m bench.fakeserver --port 8000 --ttft-ms 50 --gap-ms 20 --batch-limit 8``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

DEFAULT_MAX_TOKENS = 16


@dataclass(frozen=True)
class FakeServerConfig:
    model: str = "fake-model"
    ttft_s: float = 0.02
    gap_s: float = 0.005
    batch_limit: int = 8
    version: str = "0.0.0+fake"
    #: Never send a usage chunk, even when asked (an OpenAI server without usage support).
    no_usage: bool = False
    #: Send a ``: keep-alive`` comment before every k-th token (0: never).
    keepalive_every: int = 0
    #: Fraction of requests answered 400 / 500 / ending in an error event / dropped mid stream.
    #: Deterministic: request i fails when floor((i + 1) * rate) > floor(i * rate).
    rate_4xx: float = 0.0
    rate_5xx: float = 0.0
    error_event_rate: float = 0.0
    drop_rate: float = 0.0
    #: Insert one malformed line into every stream (after the first token).
    malformed_line: bool = False
    #: Refuse requests naming another model with vLLM's 404 (vLLM does; off: serve any name).
    reject_unknown_model: bool = True
    #: The per-bucket, load-dependent timing model (module docstring); 0 turns each off.
    gap_growth_per_open: float = 0.0
    prefill_s_per_token: float = 0.0
    gap_growth_per_prompt_token: float = 0.0
    #: Answer every streaming request by replaying this recorded SSE body, one event (text up
    #: to a blank line) per step: the first after ``ttft_s``, then one every ``gap_s``.
    replay_path: str = ""


@dataclass
class _Counters:
    connections: int = 0
    requests: int = 0
    running: int = 0
    waiting: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    by_fault: dict[str, int] = field(default_factory=dict)
    #: Per finished stream, what the server actually did (its own clock): seconds from arrival
    #: to the first token written, from the first to the last token, the token count, and the
    #: seconds it queued for a batch slot; then the monotonic clock at arrival and last token.
    streams: list[tuple[float, float, int, float, float, float]] = field(default_factory=list)


class FakeServer:
    """The server; ``config`` may be replaced while it runs (new requests see the new one),
    except ``batch_limit``, which is fixed when it starts."""

    def __init__(self, config: FakeServerConfig | None = None, *, port: int = 0) -> None:
        self.config = config or FakeServerConfig()
        self.counters = _Counters()
        self._port = port
        self._host = "127.0.0.1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._slots: asyncio.Semaphore | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve from a daemon thread with its own event loop; return once it listens."""
        self._thread = threading.Thread(target=self._thread_main, name="fakeserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake server did not start within 10 s")

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return
        loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(10)
        self._loop = None

    def reconfigure(self, **changes: Any) -> None:
        self.config = replace(self.config, **changes)

    # -- internals -----------------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._listen())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _shutdown(self) -> None:
        assert self._loop is not None
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.call_later(0.05, self._loop.stop)

    async def _listen(self) -> None:
        self._slots = asyncio.Semaphore(self.config.batch_limit)
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.counters.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                keep_open = await self._route(*request, writer)
                if not keep_open:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # Cancelled at shutdown: end quietly (a cancelled connection task is logged as an
            # error by asyncio's stream callback).
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        path = path.split("?", 1)[0]
        if method == "GET" and path == "/health":
            return await _send(writer, 200, b"", "text/plain")
        if method == "GET" and path == "/version":
            return await _send_json(writer, 200, {"version": self.config.version})
        if method == "GET" and path == "/v1/models":
            return await _send_json(writer, 200, self._models())
        if method == "GET" and path == "/fake/stats":
            return await _send_json(writer, 200, self.stats())
        if method == "GET" and path == "/metrics":
            return await _send(writer, 200, self._metrics().encode(), "text/plain; version=0.0.4")
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            return await self._completion(path.endswith("chat/completions"), body, writer)
        return await _send_json(writer, 404, _error_body("Not Found", "NotFoundError", 404))

    async def _completion(self, chat: bool, body: bytes, writer: asyncio.StreamWriter) -> bool:
        config = self.config
        counters = self.counters
        index = counters.requests
        counters.requests += 1
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            return await _send_json(
                writer, 400, _error_body("invalid JSON", "BadRequestError", 400)
            )
        name = request.get("model")
        if config.reject_unknown_model and name != config.model:
            message = f"The model `{name}` does not exist."
            return await _send_json(writer, 404, _error_body(message, "NotFoundError", 404))
        if _hits(index, config.rate_4xx):
            self._count_fault("4xx")
            message = "injected bad request"
            return await _send_json(writer, 400, _error_body(message, "BadRequestError", 400))
        if _hits(index, config.rate_5xx):
            self._count_fault("5xx")
            message = "injected server error"
            return await _send_json(writer, 500, _error_body(message, "InternalServerError", 500))
        prompt_tokens = _prompt_tokens(request, chat)
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens")
        output_tokens = int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS
        stream = bool(request.get("stream"))
        options = request.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) and not config.no_usage
        fault = None
        if _hits(index, config.error_event_rate):
            fault = "error_event"
        elif _hits(index, config.drop_rate):
            fault = "drop"
        if fault:
            self._count_fault(fault)
        assert self._slots is not None
        arrived = asyncio.get_running_loop().time()
        counters.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            counters.waiting -= 1
        counters.running += 1
        counters.prompt_tokens += prompt_tokens
        try:
            if config.replay_path and stream:
                return await self._replay(config, writer)
            if not stream:
                return await self._complete_whole(chat, name, prompt_tokens, output_tokens, writer)
            return await self._stream(
                chat, str(name), prompt_tokens, output_tokens, include_usage, fault, writer, arrived
            )
        finally:
            counters.running -= 1
            self._slots.release()

    async def _stream(
        self,
        chat: bool,
        model: str,
        prompt_tokens: int,
        output_tokens: int,
        include_usage: bool,
        fault: str | None,
        writer: asyncio.StreamWriter,
        arrived: float,
    ) -> bool:
        config = self.config
        loop = asyncio.get_running_loop()
        admitted = loop.time()
        first_at = last_at = admitted
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        deadline = admitted + config.ttft_s + config.prefill_s_per_token * prompt_tokens
        size_factor = 1.0 + config.gap_growth_per_prompt_token * prompt_tokens
        for token in range(output_tokens):
            if token:
                load_factor = 1.0 + config.gap_growth_per_open * (self.counters.running - 1)
                deadline += config.gap_s * load_factor * size_factor
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if fault == "drop" and token == output_tokens // 2:
                await writer.drain()
                writer.transport.abort()
                return False
            if fault == "error_event" and token == output_tokens // 2:
                error = _error_body("injected engine error", "InternalServerError", 500)
                writer.write(_chunk(b"data: " + json.dumps(error).encode() + b"\n\n"))
                writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
                await writer.drain()
                return True
            parts = []
            if config.keepalive_every and token % config.keepalive_every == 0:
                parts.append(b": keep-alive\n\n")
            finish = "length" if token == output_tokens - 1 else None
            if chat and token == 0:
                # vLLM's first chat chunk carries the role and empty content.
                parts.append(
                    _event(
                        _chat_chunk(
                            ident, created, model, {"role": "assistant", "content": ""}, None
                        )
                    )
                )
            text = " tok" if token else "tok"
            if chat:
                parts.append(_event(_chat_chunk(ident, created, model, {"content": text}, finish)))
            else:
                parts.append(_event(_completion_chunk(ident, created, model, text, finish)))
            if config.malformed_line and token == 1:
                parts.append(b"data: {not json\n\n")
            writer.write(_chunk(b"".join(parts)))
            last_at = loop.time()
            if token == 0:
                first_at = last_at
            self.counters.generation_tokens += 1
            await writer.drain()
        tail = []
        if include_usage:
            usage = {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + output_tokens,
                "completion_tokens": output_tokens,
            }
            obj = "chat.completion.chunk" if chat else "text_completion"
            tail.append(
                _event(
                    {
                        "id": ident,
                        "object": obj,
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        tail.append(b"data: [DONE]\n\n")
        writer.write(_chunk(b"".join(tail)) + b"0\r\n\r\n")
        await writer.drain()
        self.counters.streams.append(
            (
                first_at - arrived,
                last_at - first_at,
                output_tokens,
                admitted - arrived,
                arrived,
                last_at,
            )
        )
        return True

    async def _replay(self, config: FakeServerConfig, writer: asyncio.StreamWriter) -> bool:
        with open(config.replay_path, encoding="utf-8") as handle:
            events = [part + "\n\n" for part in handle.read().split("\n\n") if part.strip()]
        loop = asyncio.get_running_loop()
        admitted = loop.time()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for step, event in enumerate(events):
            delay = admitted + config.ttft_s + step * config.gap_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(_chunk(event.encode()))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _complete_whole(
        self,
        chat: bool,
        model: Any,
        prompt_tokens: int,
        output_tokens: int,
        writer: asyncio.StreamWriter,
    ) -> bool:
        config = self.config
        await asyncio.sleep(config.ttft_s + max(0, output_tokens - 1) * config.gap_s)
        self.counters.generation_tokens += output_tokens
        text = "tok" + " tok" * (output_tokens - 1)
        usage = {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + output_tokens,
            "completion_tokens": output_tokens,
        }
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length"}
        payload = {
            "id": uuid.uuid4().hex,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
        return await _send_json(writer, 200, payload)

    def stats(self) -> dict[str, Any]:
        """Counters and the server's own timing of finished streams (also ``GET /fake/stats``):
        the ground truth a harness's measurements are compared with."""
        counters = self.counters
        return {
            "connections": counters.connections,
            "requests": counters.requests,
            "generation_tokens": counters.generation_tokens,
            "faults": dict(counters.by_fault),
            "streams": [
                {
                    "ttft_s": ttft,
                    "decode_s": decode,
                    "tokens": tokens,
                    "queue_s": queue,
                    "arrived_at": arrived,
                    "finished_at": finished,
                }
                for ttft, decode, tokens, queue, arrived, finished in counters.streams
            ],
        }

    def _count_fault(self, name: str) -> None:
        self.counters.by_fault[name] = self.counters.by_fault.get(name, 0) + 1

    def _models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.config.model,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "vllm",
                    "root": self.config.model,
                    "parent": None,
                    "max_model_len": 8192,
                }
            ],
        }

    def _metrics(self) -> str:
        label = f'{{engine="0",model_name="{self.config.model}"}}'
        counters = self.counters
        return (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{label} {float(counters.running)}\n"
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{label} {float(counters.waiting)}\n"
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            f"vllm:prompt_tokens_total{label} {float(counters.prompt_tokens)}\n"
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
            "# TYPE vllm:generation_tokens_total counter\n"
            f"vllm:generation_tokens_total{label} {float(counters.generation_tokens)}\n"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An OpenAI-compatible fake vLLM server.")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    parser.add_argument("--batch-limit", type=int, default=8)
    parser.add_argument("--no-usage", action="store_true")
    parser.add_argument("--keepalive-every", type=int, default=0)
    parser.add_argument("--config-json", default="", help="a FakeServerConfig as JSON")
    args = parser.parse_args(argv)
    if args.config_json:
        config = FakeServerConfig(**json.loads(args.config_json))
    else:
        config = FakeServerConfig(
            model=args.model,
            ttft_s=args.ttft_ms / 1000,
            gap_s=args.gap_ms / 1000,
            batch_limit=args.batch_limit,
            no_usage=args.no_usage,
            keepalive_every=args.keepalive_every,
        )
    server = FakeServer(config, port=args.port)

    async def serve() -> None:
        await server._listen()
        print(f"listening on {server.url}", flush=True)
        assert server._server is not None
        async with server._server:
            await server._server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


@contextlib.contextmanager
def fake_server_process(config: FakeServerConfig, *, cpus: set[int] | None = None) -> Iterator[str]:
    """Run the server in its own process (no GIL shared with the client), on ``cpus`` when
    given; yield its URL."""
    command = [
        sys.executable,
        "-m",
        "bench.fakeserver",
        "--port",
        "0",
        "--config-json",
        json.dumps(asdict(config)),
    ]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        yield line.removeprefix("listening on ").strip()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def true_output_tokens_per_second(
    config: FakeServerConfig, *, concurrency: int, input_tokens: int, output_tokens: int
) -> float:
    """The steady output rate of ``concurrency`` closed-loop requests of one size (all
    admitted: ``concurrency <= batch_limit``), by the timing model of the module docstring."""
    first_s = config.ttft_s + config.prefill_s_per_token * input_tokens
    gap = (
        config.gap_s
        * (1.0 + config.gap_growth_per_open * (concurrency - 1))
        * (1.0 + config.gap_growth_per_prompt_token * input_tokens)
    )
    return concurrency * output_tokens / (first_s + (output_tokens - 1) * gap)


def true_tpot_s(config: FakeServerConfig, *, concurrency: int, input_tokens: int) -> float:
    """The time per output token at ``concurrency`` (all admitted), by the same model."""
    return (
        config.gap_s
        * (1.0 + config.gap_growth_per_open * (concurrency - 1))
        * (1.0 + config.gap_growth_per_prompt_token * input_tokens)
    )


def _hits(index: int, rate: float) -> bool:
    return rate > 0 and int((index + 1) * rate) > int(index * rate)


def _prompt_tokens(request: dict[str, Any], chat: bool) -> int:
    if chat:
        messages = request.get("messages") or []
        text = " ".join(
            str(message.get("content", "")) for message in messages if isinstance(message, dict)
        )
    else:
        prompt = request.get("prompt", "")
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    return len(text.split())


def _chat_chunk(
    ident: str, created: int, model: str, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _completion_chunk(
    ident: str, created: int, model: str, text: str, finish: str | None
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": None,
            }
        ],
    }


def _error_body(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _send_json(writer: asyncio.StreamWriter, status: int, payload: Any) -> bool:
    return await _send(writer, status, json.dumps(payload).encode(), "application/json")


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str) -> bool:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    writer.write(
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return True


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


if __name__ == "__main__":
    main()
