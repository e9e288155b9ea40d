"""Workload mixes: presets, ShareGPT and histogram files into (input x output length) buckets,
shares by output tokens, and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.errors import InputError
from oracle.mix import PRESETS, bucket_of, load_mix_file, mix_from_shapes, resolve_mix


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_mixes_whose_shares_sum_to_one(name: str) -> None:
    mix = resolve_mix(name)
    assert mix is not None and mix.workload_id == name and mix.source == "preset"
    assert sum(b.share for b in mix.buckets) == pytest.approx(1.0)
    for bucket in mix.buckets:
        assert bucket_of(bucket.input_tokens, bucket.output_tokens) == bucket.name


def test_rag_is_long_in_and_short_out_and_chat_is_short() -> None:
    rag, chat = resolve_mix("rag"), resolve_mix("chat")
    assert rag is not None and chat is not None
    assert all(b.input_tokens >= 2048 and b.output_tokens < 512 for b in rag.buckets)
    assert max(b.share for b in chat.buckets if b.input_tokens < 512) > 0.3


@given(
    st.lists(
        st.tuples(st.integers(0, 20_000), st.integers(1, 3000), st.floats(0.01, 100)),
        min_size=1,
        max_size=30,
    )
)
def test_shares_follow_output_tokens_and_shapes_stay_in_their_bucket(
    shapes: list[tuple[int, int, float]],
) -> None:
    mix = mix_from_shapes("w", "test", shapes)
    assert sum(b.share for b in mix.buckets) == pytest.approx(1.0)
    total = sum(o * w for _, o, w in shapes)
    for bucket in mix.buckets:
        members = [(i, o, w) for i, o, w in shapes if bucket_of(i, o) == bucket.name]
        assert bucket.share == pytest.approx(sum(o * w for _, o, w in members) / total)
        # The representative lengths are means of the members, so they fall in the bucket too.
        assert bucket_of(bucket.input_tokens, bucket.output_tokens) == bucket.name


def test_histogram_csv_and_json_and_sharegpt_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "hist.csv"
    csv_path.write_text("input_tokens,output_tokens,count\n100,50,3\n4000,100,1\n")
    mix = load_mix_file(csv_path)
    assert mix.workload_id == "hist" and mix.source == f"histogram {csv_path}"
    assert {b.name: round(b.share, 3) for b in mix.buckets} == {
        "in0-512.out0-128": 0.6,
        "in2048-8192.out0-128": 0.4,
    }
    json_path = tmp_path / "hist.json"
    json_path.write_text(json.dumps([{"input_tokens": 100, "output_tokens": 50, "weight": 1}]))
    assert [b.name for b in load_mix_file(json_path).buckets] == ["in0-512.out0-128"]
    share_path = tmp_path / "sharegpt.json"
    share_path.write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "word " * 40},
                        {"from": "gpt", "value": "reply " * 200},
                    ]
                }
            ]
        )
    )
    (bucket,) = load_mix_file(share_path).buckets
    assert bucket.name == "in0-512.out128-512"
    assert resolve_mix(str(share_path)) is not None
    assert resolve_mix("no-such-workload") is None


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("input_tokens,count\n1,2\n", ".csv", "needs the header input_tokens,output_tokens,count"),
        ("input_tokens,output_tokens,count\nx,2,3\n", ".csv", "line 2: input_tokens"),
        ("{not json", ".json", "not valid JSON"),
        ('[{"x": 1}]', ".json", "expected a ShareGPT list"),
        ('[{"input_tokens": 1}]', ".json", "item 0 needs"),
        ("input_tokens,output_tokens,count\n1,2,0\n", ".csv", "no request with a positive"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, suffix: str, message: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_mix_file(path)
