"""`scheduler bench run --workload MIX` against a server whose timing depends on request size:
one sweep per bucket, each stored with its bucket and provenance; the long bucket is slower."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fakeserver import FakeServer, FakeServerConfig
from oracle import db
from oracle.db import transaction
from oracle.goodput import best_bucket_goodput, best_goodput
from tests.scheduler.cli.test_bench import config_file, invoke, runs  # noqa: F401

MODEL = "fake-model"
SHORT, LONG = "in0-512.out0-128", "in512-2048.out0-128"


@pytest.fixture
def sized_server() -> Iterator[FakeServer]:
    # 600 prompt tokens: +60 ms before the first token and every gap 2.2 times as long.
    config = FakeServerConfig(
        model=MODEL,
        ttft_s=0.01,
        gap_s=0.002,
        prefill_s_per_token=0.0001,
        gap_growth_per_prompt_token=0.002,
        batch_limit=4,
    )
    with FakeServer(config) as running:
        yield running


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_goodput_per_bucket_is_measured_and_stored(
    sized_server: FakeServer,
    config_file: Path,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    histogram = tmp_path / "two-sizes.csv"
    histogram.write_text("input_tokens,output_tokens,count\n16,16,3\n600,16,1\n")
    code, out = invoke(
        config_file,
        *("bench", "run", "--endpoint", sized_server.url, "--model", MODEL),
        *("--instance-type", "g6.xlarge", "--workload", str(histogram)),
        *("--max-concurrency", "2", "--ttft-p95-ms", "5000", "--tpot-p95-ms", "5000"),
        *("--format", "json"),
    )
    assert code == 0, out
    payload = json.loads(out)
    assert payload["workload_id"] == "two-sizes"
    assert [b["bucket"] for b in payload["buckets"]] == [SHORT, LONG]
    assert [round(b["share"], 2) for b in payload["buckets"]] == [0.75, 0.25]
    short, long = payload["buckets"]
    assert short["status"] == long["status"] == "complete"
    assert 0 < long["goodput_tokens_per_second"] < 0.8 * short["goodput_tokens_per_second"]
    stored = runs(database_url)
    assert [(r.workload_id, r.bucket, r.source) for r in stored] == [
        ("two-sizes", SHORT, "measured"),
        ("two-sizes", LONG, "measured"),
    ]
    assert stored[1].details["bucket"]["input_tokens"] == 600
    assert stored[1].details["bucket"]["mix_source"] == f"histogram {histogram}"
    engine = db.make_engine(database_url)
    try:
        with transaction(engine) as session:
            per_bucket = best_bucket_goodput(session, model=MODEL, workload_id="two-sizes")
            assert set(per_bucket["g6.xlarge"]) == {SHORT, LONG}
            # Bucket runs are not the instance's one number.
            assert best_goodput(session, model=MODEL) == {}
    finally:
        engine.dispose()


def test_an_unknown_workload_still_names_the_choices(
    sized_server: FakeServer,
    config_file: Path,  # noqa: F811
) -> None:
    with pytest.raises(Exception, match="unknown workload 'nope'"):
        invoke(
            config_file,
            *("bench", "run", "--endpoint", sized_server.url, "--model", MODEL),
            *("--instance-type", "g6.xlarge", "--workload", "nope"),
        )
