"""Reference figures, the bandwidth-scaled estimates and the rule for which models fit."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.goodput import best_goodput
from oracle.models import BenchmarkRunModel, InstanceTypeModel
from oracle.reference import (
    DEFAULT_MODEL,
    ModelSize,
    ensure_goodput_figures,
    model_fits,
    model_size,
)


def load_catalog(engine: Engine, shared_data: Path) -> None:
    """The accelerated instance types of the moto snapshot (real DescribeInstanceTypes data)."""
    path = shared_data / "moto-ec2" / "instance_types_accelerated.csv"
    with path.open() as handle, transaction(engine) as session:
        for row in csv.DictReader(handle):
            session.add(
                InstanceTypeModel(
                    source="file",
                    source_detail=str(path.name),
                    observed_at=datetime(2026, 10, 27, tzinfo=UTC),
                    instance_type=row["instance_type"],
                    family=row["family"],
                    accelerator_name=row["accelerator_name"],
                    accelerator_manufacturer=row["accelerator_manufacturer"],
                    accelerator_count=int(row["accelerator_count"]),
                    accelerator_memory_mib_each=int(row["accelerator_memory_mib_each"]),
                    vcpus=int(row["vcpus"]),
                    memory_mib=int(row["memory_mib"]),
                )
            )


@pytest.mark.parametrize(
    ("model", "params", "bytes_per_param"),
    [
        (DEFAULT_MODEL, 8.03, 2.0),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", 8.03, 2.0),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 0.135, 2.0),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56.0, 2.0),
        ("Qwen/Qwen2.5-72B-Instruct-AWQ", 72.0, 0.5),
        ("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", 70.0, 1.0),
    ],
)
def test_model_size_from_table_or_name(model: str, params: float, bytes_per_param: float) -> None:
    size = model_size(model)
    assert size is not None
    assert size.params_billion == pytest.approx(params)
    assert size.bytes_per_param == bytes_per_param


def test_unknown_size() -> None:
    assert model_size("my-org/house-model") is None


def test_fit_rule() -> None:
    llama8 = model_size(DEFAULT_MODEL)
    assert llama8 is not None
    # 14.96 GiB of bf16 weights + 3.74 GiB headroom = 18.7 GiB.
    assert model_fits(llama8, gpu_count=1, gpu_memory_mib_each=22888)  # L4 / A10G: 20.1 usable
    assert not model_fits(llama8, gpu_count=1, gpu_memory_mib_each=16384)  # T4: 14.4 usable
    assert model_fits(llama8, gpu_count=4, gpu_memory_mib_each=16384)
    seventy = ModelSize(70.6, 2.0)
    assert not model_fits(seventy, gpu_count=4, gpu_memory_mib_each=22888)
    assert model_fits(seventy, gpu_count=8, gpu_memory_mib_each=40960)
    assert not model_fits(llama8, gpu_count=0, gpu_memory_mib_each=22888)


def test_references_and_estimates_for_the_default_model(engine: Engine, shared_data: Path) -> None:
    load_catalog(engine, shared_data)
    added = ensure_goodput_figures(engine, model=DEFAULT_MODEL)
    assert added > 0
    assert ensure_goodput_figures(engine, model=DEFAULT_MODEL) == 0  # idempotent
    with transaction(engine) as session:
        facts = best_goodput(session, model=DEFAULT_MODEL)
        references = session.scalars(
            sa.select(BenchmarkRunModel).where(BenchmarkRunModel.source == "reference")
        ).all()
    # The L4 figure lands on every 1x L4 type, the H100 figure on p5.4xlarge.
    for instance_type in ("g6.xlarge", "g6.2xlarge", "g6.16xlarge", "gr6.4xlarge"):
        assert facts[instance_type].source == "reference"
        assert facts[instance_type].goodput_tokens_per_second == pytest.approx(513.2)
    # Two H100 references: the newer, SLO-bounded vLLM sweep wins over the SGLang run.
    assert facts["p5.4xlarge"].source == "reference"
    assert facts["p5.4xlarge"].goodput_tokens_per_second == pytest.approx(1384.2)
    assert {r.goodput_tokens_per_second for r in references if r.instance_type == "p5.4xlarge"} == {
        1384.2,
        5595.07,
    }
    assert {r.engine for r in references} == {"vllm", "sglang"}
    # No AWS type has 2x A10G: that record lands nowhere.
    assert all(r.instance_type.startswith(("g6.", "gr6.", "p5.")) for r in references)
    # Estimates: same GPU scaled by count; other GPUs by bandwidth from the L4 anchor.
    assert facts["g6.12xlarge"].source == "estimated"
    assert facts["g6.12xlarge"].goodput_tokens_per_second == pytest.approx(4 * 513.2)
    assert facts["p5.48xlarge"].goodput_tokens_per_second == pytest.approx(8 * 1384.2)
    assert facts["g5.xlarge"].goodput_tokens_per_second == pytest.approx(513.2 * 600 / 300)
    assert facts["g6e.xlarge"].goodput_tokens_per_second == pytest.approx(513.2 * 864 / 300)
    assert facts["p4de.24xlarge"].goodput_tokens_per_second == pytest.approx(513.2 * 2039 / 300 * 8)
    assert "scaled from reference g6.xlarge " in facts["g5.xlarge"].source_detail
    # Too small for the model: a single T4 gets nothing; four T4s do.
    assert "g4dn.xlarge" not in facts
    assert "g4dn.12xlarge" in facts
    # No bandwidth known (Inferentia, Trainium), or a fractional GPU (g6f): no estimate.
    assert not any(t.startswith(("inf", "trn", "g6f", "dl2q")) for t in facts)


def test_estimates_prefer_a_measurement_and_rescale(engine: Engine, shared_data: Path) -> None:
    load_catalog(engine, shared_data)
    ensure_goodput_figures(engine, model=DEFAULT_MODEL)
    with transaction(engine) as session:
        session.add(
            BenchmarkRunModel(
                source="measured",
                observed_at=datetime.now(UTC),
                model=DEFAULT_MODEL,
                instance_type="g5.xlarge",
                gpu_count=1,
                workload_id="chat-mix-v1",
                ttft_p95_ms_slo=2000.0,
                tpot_p95_ms_slo=100.0,
                goodput_tokens_per_second=700.0,
                status="complete",
            )
        )
    added = ensure_goodput_figures(engine, model=DEFAULT_MODEL)
    assert added > 0  # the estimates move to the measured anchor
    with transaction(engine) as session:
        facts = best_goodput(session, model=DEFAULT_MODEL)
    assert facts["g5.xlarge"].source == "measured"
    assert facts["g5.12xlarge"].goodput_tokens_per_second == pytest.approx(4 * 700.0)
    assert facts["g6e.xlarge"].goodput_tokens_per_second == pytest.approx(700.0 * 864 / 600)
    assert facts["g6.xlarge"].source == "reference"  # references stay where they apply


def test_other_models_scale_by_weight_size_and_fit(engine: Engine, shared_data: Path) -> None:
    load_catalog(engine, shared_data)
    ensure_goodput_figures(engine, model=DEFAULT_MODEL)
    model = "meta-llama/Llama-3.1-70B-Instruct"
    assert ensure_goodput_figures(engine, model=model) > 0
    with transaction(engine) as session:
        facts = best_goodput(session, model=model)
    assert {fact.source for fact in facts.values()} == {"estimated"}
    # 141 GB of weights: one or four 24 GB GPUs are too small, eight A100 40 GB fit.
    assert "g6.xlarge" not in facts and "g5.12xlarge" not in facts
    assert "p4d.24xlarge" in facts
    scale = 8.03 / 70.6
    assert facts["p4d.24xlarge"].goodput_tokens_per_second == pytest.approx(
        513.2 * 1555 / 300 * 8 * scale
    )


def test_nothing_for_a_model_of_unknown_size(engine: Engine, shared_data: Path) -> None:
    load_catalog(engine, shared_data)
    assert ensure_goodput_figures(engine, model="my-org/house-model") == 0
