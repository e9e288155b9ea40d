"""Fixtures of the harness's tests: a fake vLLM server on 127.0.0.1 and the fixture files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fakeserver import FakeServer, FakeServerConfig

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = "fake-model"


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A fast fake server in a thread (2 ms gaps); tests reconfigure it as they need."""
    with FakeServer(FakeServerConfig(model=MODEL, ttft_s=0.01, gap_s=0.002, batch_limit=8)) as s:
        yield s
