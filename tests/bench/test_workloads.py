"""Workloads from config: fixed, mix, ShareGPT files; synthetic prompts; bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.workloads import Workload, make_requests, synthetic_prompt
from oracle.errors import InputError
from scheduler.config import DEFAULT_WORKLOADS, Settings
from tests.bench.conftest import FIXTURES


@given(st.integers(1, 4000), st.integers(0, 2**31))
def test_synthetic_prompt_has_the_asked_token_count(tokens: int, seed: int) -> None:
    prompt = synthetic_prompt(tokens, seed=seed)
    assert len(prompt.split()) == tokens


def test_prompts_differ_between_requests_and_repeat_per_seed() -> None:
    workload = Workload.from_mapping("w", {"kind": "fixed", "input_tokens": 64, "output_tokens": 8})
    first = make_requests(workload, 5, seed=1)
    assert len({spec.prompt for spec in first}) == 5
    assert [s.prompt for s in make_requests(workload, 5, seed=1)] == [s.prompt for s in first]
    assert all(s.input_tokens == 64 and s.output_tokens == 8 for s in first)


def test_default_chat_mix_follows_its_weights() -> None:
    config = DEFAULT_WORKLOADS["chat-mix-v1"]
    workload = Workload.from_mapping("chat-mix-v1", config.model_dump())
    assert workload.api == "chat" and len(workload.shapes) == 3
    specs = make_requests(workload, 500, seed=7)
    counts = Counter(spec.input_tokens for spec in specs)
    # Within 3.6 standard deviations of a binomial share over 500 draws.
    assert counts[1536] / 500 == pytest.approx(0.5, abs=0.08)
    assert counts[512] / 500 == pytest.approx(0.3, abs=0.075)
    assert counts[3072] / 500 == pytest.approx(0.2, abs=0.065)
    assert {spec.output_tokens for spec in specs if spec.input_tokens == 512} == {128}


def test_sharegpt_file() -> None:
    path = FIXTURES / "sharegpt_small.json"
    workload = Workload.from_mapping("sg", {"kind": "sharegpt", "path": str(path)})
    specs = make_requests(workload, 20, seed=3)
    prompts = {spec.prompt for spec in specs}
    # The third conversation has no human turn; the system turn of the second is skipped.
    assert prompts <= {
        "Pretend you are a ship's cat and tell me about your day at sea.",
        "Do you have a room for the night?",
    }
    short = [s for s in specs if s.prompt.startswith("Do you")]
    assert short and all(s.output_tokens == 6 for s in short)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "fixed", "input_tokens": 0, "output_tokens": 5}, "needs input_tokens"),
        ({"kind": "mix", "mix": []}, "at least one entry"),
        ({"kind": "sharegpt"}, "needs path"),
        ({"kind": "poisson"}, "unknown kind 'poisson'"),
        ({"kind": "fixed", "api": "embeddings"}, "api must be"),
    ],
)
def test_bad_workload_config(raw: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Workload.from_mapping("w", raw)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "expected a JSON list"),
        ('[{"id": 1}]', "item 0 has no 'conversations' list"),
        ('[{"conversations": [{"from": "gpt", "value": "hi"}]}]', "no conversation has"),
    ],
)
def test_bad_sharegpt_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    workload = Workload.from_mapping("sg", {"kind": "sharegpt", "path": str(path)})
    with pytest.raises(InputError, match=message) as caught:
        make_requests(workload, 1)
    assert str(path) in str(caught.value)


def test_missing_sharegpt_file(tmp_path: Path) -> None:
    workload = Workload.from_mapping("sg", {"kind": "sharegpt", "path": str(tmp_path / "x")})
    with pytest.raises(InputError, match="not found"):
        make_requests(workload, 1)


def test_configured_workloads_join_the_built_in_ones() -> None:
    raw = {"kind": "fixed", "input_tokens": 8, "output_tokens": 8}
    settings = Settings.model_validate({"bench": {"workloads": {"tiny": raw}}})
    assert set(settings.bench.workloads) == {*DEFAULT_WORKLOADS, "tiny"}
    assert settings.bench.default_workload in settings.bench.workloads
