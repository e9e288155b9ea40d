"""Parsing of vLLM's streaming chunks, on hand-written fixtures in vLLM's response shape and
on the recordings from a real vLLM server (fixtures/vllm/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.sse import EventKind, error_from_body, parse_line
from tests.bench.conftest import FIXTURES


def events(path: Path) -> list:
    parsed = (parse_line(line) for line in path.read_text().splitlines())
    return [event for event in parsed if event is not None]


def test_chat_stream_role_chunk_tokens_usage_and_done() -> None:
    parsed = events(FIXTURES / "chat_stream.sse")
    kinds = [event.kind for event in parsed]
    assert kinds == [EventKind.chunk] * 6 + [EventKind.done]
    assert parsed[0].role_only and parsed[0].has_choices and parsed[0].text == ""
    assert [event.text for event in parsed[1:5]] == ["Hello", " there", ",", " friend"]
    assert not any(event.role_only for event in parsed[1:])
    assert parsed[4].finish_reason == "length"
    usage = parsed[5]
    assert not usage.has_choices
    assert (usage.prompt_tokens, usage.completion_tokens) == (31, 4)


def test_completion_stream_text_and_usage() -> None:
    parsed = events(FIXTURES / "completion_stream.sse")
    assert "".join(event.text for event in parsed) == " the quick brown"
    assert sum(event.has_choices for event in parsed) == 3
    assert not any(event.role_only for event in parsed)
    assert parsed[-2].completion_tokens == 3
    assert parsed[-1].kind is EventKind.done


def test_keep_alive_comments_are_comments_and_no_usage_means_none() -> None:
    parsed = events(FIXTURES / "chat_no_usage_keepalive.sse")
    assert [e.kind for e in parsed].count(EventKind.comment) == 2
    assert all(e.completion_tokens is None for e in parsed)


def test_error_event_mid_stream_older_and_newer_shapes() -> None:
    parsed = events(FIXTURES / "chat_error_midstream.sse")
    errors = [e for e in parsed if e.kind is EventKind.error]
    assert len(errors) == 1
    assert "longer than the maximum model length" in (errors[0].error or "")
    newer = parse_line('data: {"error": {"message": "boom", "type": "X", "code": 500}}')
    assert newer is not None and newer.kind is EventKind.error and newer.error == "boom"


def test_malformed_lines_are_reported_not_raised() -> None:
    parsed = events(FIXTURES / "completion_malformed.sse")
    assert [e.kind for e in parsed].count(EventKind.malformed) == 2
    assert "".join(e.text for e in parsed) == " a b"


def test_error_bodies_of_real_vllm() -> None:
    body = (FIXTURES / "vllm" / "error_unknown_model.json").read_bytes()
    assert "does not exist" in error_from_body(body)
    assert error_from_body(b"<html>bad gateway</html>") == "<html>bad gateway</html>"


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("chat_stream_usage.sse", 8),
        ("chat_stream_no_usage.sse", 8),
        ("completion_stream_usage.sse", 8),
        ("completion_stream_no_usage.sse", 8),
    ],
)
def test_recorded_vllm_streams_have_one_token_chunk_per_token(name: str, tokens: int) -> None:
    path = FIXTURES / "vllm" / name
    if not path.is_file():
        pytest.skip(f"{path} is not recorded yet")
    parsed = events(path)
    token_chunks = [e for e in parsed if e.has_choices and not e.role_only]
    assert len(token_chunks) == tokens
    assert parsed[-1].kind is EventKind.done
    assert not [e for e in parsed if e.kind in (EventKind.malformed, EventKind.error)]
    usage = [e.completion_tokens for e in parsed if e.completion_tokens is not None]
    assert usage == ([tokens] if "_usage" in name and "no_usage" not in name else [])


@given(st.text(max_size=200))
def test_any_line_parses_without_raising(line: str) -> None:
    event = parse_line(line)
    assert event is None or isinstance(event.kind, EventKind)


@given(st.binary(max_size=200))
def test_any_bytes_parse_without_raising(line: bytes) -> None:
    event = parse_line(line)
    assert event is None or isinstance(event.kind, EventKind)
