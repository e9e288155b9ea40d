"""Goodput per workload bucket: measured figures as they are, other types scaled by the roofline
rule (decode-bound with bandwidth, prefill-bound with compute), types without a bucket figure
from their one number; each estimate names its anchor. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from oracle.bucket_goodput import (
    BucketShape,
    GpuRoof,
    bucket_goodput,
    request_seconds,
)
from oracle.db import transaction
from oracle.goodput import best_bucket_goodput, best_goodput
from oracle.models import BenchmarkRunModel
from oracle.reference import DEFAULT_MODEL, model_size
from tests.oracle.test_reference import load_catalog

OBSERVED = datetime(2026, 11, 20, tzinfo=UTC)
#: Decode-bound (short prompt, long reply) and prefill-bound (long prompt, one line back).
DECODE = BucketShape("in0-512.out512+", 64, 1024)
PREFILL = BucketShape("in8192+.out0-128", 16000, 16)


def run(
    instance_type: str, bucket: str, value: float, source: str = "measured"
) -> BenchmarkRunModel:
    return BenchmarkRunModel(
        source=source,
        source_detail="test",
        observed_at=OBSERVED,
        model=DEFAULT_MODEL,
        instance_type=instance_type,
        gpu_count=1,
        tensor_parallel=1,
        engine="vllm",
        workload_id="two",
        bucket=bucket,
        ttft_p95_ms_slo=2000.0,
        tpot_p95_ms_slo=100.0,
        goodput_tokens_per_second=value,
        status="complete",
        details={},
    )


@pytest.fixture
def stored(engine: Engine, shared_data: Path) -> Engine:
    load_catalog(engine, shared_data)
    with transaction(engine) as session:
        session.add(run("g5.xlarge", DECODE.name, 1000.0))
        session.add(run("g5.xlarge", PREFILL.name, 50.0))
        # A one-number figure only: the type's buckets come from it.
        session.add(run("g6.xlarge", "", 500.0))
    return engine


def test_measured_buckets_stay_and_other_types_scale_by_the_roofline(stored: Engine) -> None:
    with transaction(stored) as session:
        facts = bucket_goodput(
            session, model=DEFAULT_MODEL, workload_id="two", buckets=[DECODE, PREFILL]
        )
        # Per-bucket rows never stand in for the one number.
        assert set(best_goodput(session, model=DEFAULT_MODEL)) == {"g6.xlarge"}
        assert set(best_bucket_goodput(session, model=DEFAULT_MODEL, workload_id="two")) == {
            "g5.xlarge"
        }
    g5 = facts["g5.xlarge"]
    assert g5[DECODE.name].source == "measured"
    assert g5[DECODE.name].goodput_tokens_per_second == 1000.0
    # g6e.xlarge (one L40S: 864 GB/s, 362 TFLOPS) from g5.xlarge (one A10G: 600 GB/s, 70):
    # the decode-bound bucket moves with bandwidth, the prefill-bound one with compute.
    g6e = facts["g6e.xlarge"]
    decode_ratio = g6e[DECODE.name].goodput_tokens_per_second / 1000.0
    prefill_ratio = g6e[PREFILL.name].goodput_tokens_per_second / 50.0
    assert decode_ratio == pytest.approx(864 / 600, rel=0.1)
    assert prefill_ratio == pytest.approx(362 / 70, rel=0.1)
    assert g6e[DECODE.name].source == "estimated"
    assert "g5.xlarge" in g6e[DECODE.name].source_detail
    assert g6e[DECODE.name].observed_at.replace(tzinfo=UTC) == OBSERVED
    # g6.xlarge has a one-number figure (500 tok/s) and no bucket of its own... but a measured
    # bucket on another type comes first (rule 2), so its buckets scale from g5.xlarge too.
    assert "g5.xlarge" in facts["g6.xlarge"][DECODE.name].source_detail
    # The 8-GPU A100 type holds the model; an instance of it is 8 GPUs' worth.
    p4d = facts["p4d.24xlarge"][DECODE.name].goodput_tokens_per_second
    assert p4d == pytest.approx(1000.0 * 8 * 1555 / 600, rel=0.1)


def test_without_any_bucket_figure_a_type_uses_its_one_number(
    engine: Engine, shared_data: Path
) -> None:
    load_catalog(engine, shared_data)
    with transaction(engine) as session:
        session.add(run("g6.xlarge", "", 500.0, source="imported"))
    with transaction(engine) as session:
        facts = bucket_goodput(
            session, model=DEFAULT_MODEL, workload_id="two", buckets=[DECODE, PREFILL]
        )
    g6 = facts["g6.xlarge"]
    assert g6[DECODE.name].source == "estimated"
    assert "one-number goodput" in g6[DECODE.name].source_detail
    # Long replies to short prompts run near the decode roof, above the reference shape's rate;
    # huge prompts with one line back fall far below it.
    assert g6[DECODE.name].goodput_tokens_per_second > 500.0
    assert g6[PREFILL.name].goodput_tokens_per_second < 100.0


def test_request_seconds_is_the_sum_of_prefill_and_decode() -> None:
    size = model_size(DEFAULT_MODEL)
    assert size is not None
    roof = GpuRoof("A100", 312e12, 1555e9)
    prefill_only = request_seconds(roof, size, 1000, 0)
    decode_only = request_seconds(roof, size, 0, 100)
    assert request_seconds(roof, size, 1000, 100) == pytest.approx(prefill_only + decode_only)
    # 2 FLOP per parameter per prompt token at 312 TFLOPS.
    assert prefill_only == pytest.approx(2 * 8.03e9 * 1000 / 312e12)
