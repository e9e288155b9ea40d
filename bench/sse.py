"""Server-sent events of vLLM's OpenAI-compatible streaming API, parsed line by line.

A stream is ``data: {json}`` lines separated by blank lines, ending with ``data: [DONE]``.
Lines starting with ``:`` are comments (keep-alive pings). vLLM reports an error mid stream as
a data line holding ``{"error": {...}}`` (newer) or ``{"object": "error", ...}`` (older).

Chunk shapes (vLLM):
- chat: ``{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content":
  "..."}, "finish_reason": null}]}``; the first chunk carries ``delta.role`` and empty content.
- completions: ``{"object": "text_completion", "choices": [{"index": 0, "text": "..."}]}``.
- usage (with ``stream_options.include_usage``): ``{"choices": [], "usage": {"prompt_tokens":
  N, "completion_tokens": M, "total_tokens": N + M}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any


class EventKind(Enum):
    chunk = "chunk"
    done = "done"
    error = "error"
    comment = "comment"
    malformed = "malformed"


@dataclass(frozen=True)
class StreamEvent:
    """One parsed line of a stream.

    ``text`` is the generated text of a chunk; ``has_choices`` says whether the chunk carried a
    choice at all (vLLM sends one such chunk per generated token, sometimes with empty text, plus
    a role-only first chunk in chat); ``prompt_tokens`` and
    ``completion_tokens`` come from a usage object when the chunk has one.
    """

    kind: EventKind
    text: str = ""
    has_choices: bool = False
    #: A chat chunk that only announces the role (vLLM's first chat chunk): not a token.
    role_only: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def parse_line(line: str | bytes) -> StreamEvent | None:
    """Parse one line of an SSE stream; ``None`` for blank lines and non-data fields."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line:
        return None
    if line.startswith(":"):
        return StreamEvent(EventKind.comment)
    if not line.startswith("data:"):
        # Other SSE fields (event:, id:, retry:) carry nothing the harness needs.
        if line.split(":", 1)[0] in ("event", "id", "retry"):
            return None
        return StreamEvent(EventKind.malformed, error=f"not an SSE line: {line[:80]!r}")
    payload = line[5:].strip()
    if payload == "[DONE]":
        return StreamEvent(EventKind.done)
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        return StreamEvent(EventKind.malformed, error=f"not JSON: {payload[:80]!r}")
    if not isinstance(data, dict):
        return StreamEvent(EventKind.malformed, error=f"not a JSON object: {payload[:80]!r}")
    return parse_chunk(data)


def parse_chunk(data: dict[str, Any]) -> StreamEvent:
    """Interpret one decoded ``data:`` object (chat chunk, completion chunk, usage or error)."""
    if (message := _error_message(data)) is not None:
        return StreamEvent(EventKind.error, error=message)
    choices = data.get("choices")
    text = ""
    finish_reason = None
    has_choices = role_only = False
    if isinstance(choices, list) and choices:
        first = choices[0]
        if not isinstance(first, dict):
            return StreamEvent(EventKind.malformed, error="a choice is not a JSON object")
        has_choices = True
        delta = first.get("delta")
        # Chat chunks carry text in delta.content; completion chunks in text.
        text = (delta.get("content") if isinstance(delta, dict) else first.get("text")) or ""
        role_only = (
            isinstance(delta, dict)
            and "role" in delta
            and not text
            and first.get("finish_reason") is None
        )
        if not isinstance(text, str):
            return StreamEvent(EventKind.malformed, error="choice text is not a string")
        finish_reason = first.get("finish_reason")
    prompt_tokens = completion_tokens = None
    usage = data.get("usage")
    if isinstance(usage, dict):
        prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        completion_tokens = _int_or_none(usage.get("completion_tokens"))
    return StreamEvent(
        EventKind.chunk,
        text=text,
        has_choices=has_choices,
        role_only=role_only,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def error_from_body(body: bytes) -> str:
    """The message of a non-2xx JSON error body (vLLM's shapes), else the body's start."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body[:200].decode("utf-8", errors="replace").strip()
    if isinstance(data, dict) and (message := _error_message(data)) is not None:
        return message
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return str(data["detail"])
    return body[:200].decode("utf-8", errors="replace").strip()


def _error_message(data: dict[str, Any]) -> str | None:
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if isinstance(error, str):
        return error
    if data.get("object") == "error":
        return str(data.get("message", "error"))
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
