"""Goodput figures for instance types nobody has measured yet: published references and estimates.

Reference figures are published throughput results for the default model on common GPUs, each
with its source below. They are stored with ``source = "reference"`` on every instance type of
the oracle's catalog whose GPU and GPU count match. Most are maximum-throughput runs, not
SLO-bounded sweeps, so they are optimistic; the planner prefers any measured figure, and among
references the newest.

Estimates: for every other catalog type whose GPU memory holds the model, a figure scaled from
an anchor (a measured, imported or reference figure) by GPU memory bandwidth and GPU count:

    estimate = anchor_tokens_per_second * (bandwidth(gpu) / bandwidth(anchor_gpu))
                                        * (gpu_count / anchor_gpu_count)
                                        * (weight_bytes(anchor_model) / weight_bytes(model))

Decoding is memory-bandwidth bound (every token reads all weights), which is why bandwidth and
weight size are the scale. An anchor on the same GPU is preferred (then only the count scales).
The last factor applies only when the model has no figure at all and the default model's are
used. Stored with ``source = "estimated"``; the source_detail names the anchor.

Per workload bucket (request size), the same estimate extends by the roofline rule of
:mod:`oracle.bucket_goodput`: decode-bound buckets scale with memory bandwidth, prefill-bound ones
with compute.

Fit rule: a model fits when its weights plus KV cache headroom fit in 90% of the instance's
total GPU memory (vLLM's default ``gpu_memory_utilization`` is 0.9):

    weights_gib + max(2, 0.25 * weights_gib) <= 0.9 * gpu_count * gpu_memory_gib_each
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from oracle.db import transaction
from oracle.goodput import GOODPUT_PREFERENCE, best_goodput
from oracle.models import BenchmarkRunModel, InstanceTypeModel

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
#: Names under which the default model is published (Meta renamed the repository in 2024).
MODEL_ALIASES = {"meta-llama/Meta-Llama-3.1-8B-Instruct": DEFAULT_MODEL}

#: Share of GPU memory vLLM uses by default (``--gpu-memory-utilization 0.9``).
GPU_MEMORY_UTILIZATION = 0.9
#: KV cache headroom: at least this many GiB, or this share of the weights.
KV_HEADROOM_MIN_GIB = 2.0
KV_HEADROOM_SHARE = 0.25

#: GPU memory bandwidth in GB/s, from the vendors' public data sheets:
#: T4 nvidia.com/en-us/data-center/tesla-t4 (320); A10G AWS G5 documentation (600);
#: L4 nvidia.com/en-us/data-center/l4 (300); L40S nvidia.com/en-us/data-center/l40s (864);
#: V100 nvidia.com/en-us/data-center/v100 (900, SXM2); A100 40 GB (1555) and 80 GB (2039)
#: nvidia.com/en-us/data-center/a100; H100 SXM (3350) nvidia.com/en-us/data-center/h100;
#: H200 (4800) nvidia.com/en-us/data-center/h200; B200 (8000) and B300 (8000) NVIDIA DGX B200 /
#: GB300 pages; RTX PRO 4500 Blackwell (896) and RTX PRO 6000 Blackwell Server Edition (1597)
#: nvidia.com/en-us/data-center/rtx-pro-6000-blackwell-server-edition.
GPU_BANDWIDTH_GB_PER_S = {
    "T4": 320.0,
    "T4g": 320.0,
    "A10G": 600.0,
    "L4": 300.0,
    "L40S": 864.0,
    "V100": 900.0,
    "A100": 1555.0,
    "A100-80GB": 2039.0,
    "H100": 3350.0,
    "H200": 4800.0,
    "B200": 8000.0,
    "B300": 8000.0,
    "RTX PRO 4500": 896.0,
    "RTX PRO Server 6000": 1597.0,
}

#: Parameter counts (billions) of models whose names do not say it exactly.
MODEL_PARAMS_BILLION = {
    DEFAULT_MODEL: 8.03,  # huggingface.co/meta-llama/Llama-3.1-8B-Instruct (8.03B)
    "meta-llama/Llama-3.1-70B-Instruct": 70.6,  # model card: 70.6B
}


@dataclass(frozen=True)
class ReferenceFigure:
    model: str
    accelerator_name: str
    gpu_count: int
    tensor_parallel: int
    output_tokens_per_second: float
    engine: str
    observed_at: datetime
    source_detail: str
    #: Whether estimates may scale from it (a comparable maximum-throughput run).
    anchor: bool = True


#: Published results. The llm-price-compass ones: arc53/llm-price-compass (MIT), benchmarks/
#: Meta-Llama-3.1-8B-Instruct/<GPU>/*.json and gpu-benchmarks.csv, commit 67f3c59 (2024-08-20);
#: 1000 ShareGPT-like prompts (215,196 input tokens), request rate inf (maximum throughput).
REFERENCE_FIGURES = (
    # L4 (Scaleway L4-1-24G): vLLM, 197,739 output tokens in 385.3 s.
    ReferenceFigure(
        DEFAULT_MODEL,
        "L4",
        1,
        1,
        513.2,
        "vllm",
        datetime(2024, 8, 13, 14, 39, 58, tzinfo=UTC),
        "llm-price-compass L4 2024-08-13 (vLLM, 1x L4, 1000 prompts, rate inf, "
        "output_throughput 513.2 tok/s)",
    ),
    # H100 (Scaleway H100-1-80G): SGLang at 200 req/s, 5,595 output tok/s, p99 TTFT 4.1 s.
    ReferenceFigure(
        DEFAULT_MODEL,
        "H100",
        1,
        1,
        5595.07,
        "sglang",
        datetime(2024, 8, 14, 15, 58, 12, tzinfo=UTC),
        "llm-price-compass H100 2024-08-14 (SGLang, 1x H100, 1000 prompts, 200 req/s, "
        "output_throughput 5595.1 tok/s)",
    ),
    # H100 80GB HBM3: vLLM 0.21.0, fp16, a concurrency sweep (1, 4, 16, 64) of short chat
    # requests; 1,384.2 output tok/s at concurrency 16 with TTFT p99 64.7 ms and TPOT p50
    # 10.9 ms, so within the default SLO (concurrency 64 gave fewer tokens). InferenceBench
    # recipe "concurrency sweep", yobitelcomm.github.io/bench/recipes/concurrency-sweep/,
    # captured 2026-05-16. An SLO-bounded vLLM figure, newer than the SGLang one: preferred.
    ReferenceFigure(
        DEFAULT_MODEL,
        "H100",
        1,
        1,
        1384.2,
        "vllm",
        datetime(2026, 5, 16, tzinfo=UTC),
        "InferenceBench concurrency sweep 2026-05-16 (vLLM 0.21.0, 1x H100 80GB, short chat, "
        "concurrency 16, 1384.2 tok/s, TTFT p99 64.7 ms, TPOT p50 10.9 ms)",
    ),
    # A10G on AWS: vLLM, 2x A10G with TP=2, but only 43 output tokens per request on average,
    # so prefill-bound and not comparable: kept as a record, never an anchor. AWS sells no
    # 2x A10G type, so it matches no catalog entry.
    ReferenceFigure(
        DEFAULT_MODEL,
        "A10G",
        2,
        2,
        441.76,
        "vllm",
        datetime(2024, 8, 20, 14, 30, 0, tzinfo=UTC),
        "llm-price-compass A10G 2024-08-20 (vLLM, 2x A10G TP=2, 43 output tokens per request, "
        "output_throughput 441.8 tok/s)",
        anchor=False,
    ),
)


@dataclass(frozen=True)
class ModelSize:
    params_billion: float
    bytes_per_param: float

    @property
    def weights_gib(self) -> float:
        return self.params_billion * 1e9 * self.bytes_per_param / 2**30


def ensure_goodput_figures(engine: Engine, *, model: str) -> int:
    """Store the reference figures for ``model`` and estimates for every catalog instance type
    that holds it and has no figure of its own; return the rows added (0 when all are there)."""
    model = MODEL_ALIASES.get(model, model)
    now = datetime.now(UTC)
    with transaction(engine) as session:
        catalog = list(session.scalars(sa.select(InstanceTypeModel)))
        added = _add_references(session, model, catalog)
        session.flush()
        added += _add_estimates(session, model, catalog, now)
    return added


def model_size(model: str) -> ModelSize | None:
    """Parameters and bytes per parameter, from the table or the model's name (``8B``,
    ``135M``, ``8x7B``); bf16 unless the name says a quantisation. ``None`` when unknown."""
    model = MODEL_ALIASES.get(model, model)
    name = model.rsplit("/", 1)[-1]
    lowered = name.lower()
    if any(tag in lowered for tag in ("awq", "gptq", "int4", "4bit", "q4")):
        bytes_per_param = 0.5
    elif any(tag in lowered for tag in ("fp8", "int8", "8bit", "w8a8")):
        bytes_per_param = 1.0
    else:
        bytes_per_param = 2.0
    if model in MODEL_PARAMS_BILLION:
        return ModelSize(MODEL_PARAMS_BILLION[model], bytes_per_param)
    experts = re.search(r"(\d+)x(\d+(?:\.\d+)?)([bm])(?![a-z])", lowered)
    if experts:
        scale = 1.0 if experts.group(3) == "b" else 1e-3
        return ModelSize(int(experts.group(1)) * float(experts.group(2)) * scale, bytes_per_param)
    plain = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)([bm])(?![a-z])", lowered)
    if plain:
        scale = 1.0 if plain.group(2) == "b" else 1e-3
        return ModelSize(float(plain.group(1)) * scale, bytes_per_param)
    return None


def model_fits(size: ModelSize, *, gpu_count: int, gpu_memory_mib_each: int) -> bool:
    """The fit rule of the module docstring."""
    if gpu_count <= 0 or gpu_memory_mib_each <= 0:
        return False
    weights = size.weights_gib
    needed = weights + max(KV_HEADROOM_MIN_GIB, KV_HEADROOM_SHARE * weights)
    return needed <= GPU_MEMORY_UTILIZATION * gpu_count * gpu_memory_mib_each / 1024


def gpu_bandwidth(accelerator_name: str, gpu_memory_mib_each: int) -> float | None:
    """GB/s of one GPU; the A100 comes in 40 GB and 80 GB versions of different bandwidth."""
    if accelerator_name == "A100" and gpu_memory_mib_each >= 80 * 1024:
        return GPU_BANDWIDTH_GB_PER_S["A100-80GB"]
    return GPU_BANDWIDTH_GB_PER_S.get(accelerator_name)


def _add_references(session: Session, model: str, catalog: list[InstanceTypeModel]) -> int:
    added = 0
    for figure in REFERENCE_FIGURES:
        if figure.model != model:
            continue
        for row in catalog:
            if (row.accelerator_name, row.accelerator_count) != (
                figure.accelerator_name,
                figure.gpu_count,
            ):
                continue
            if _exists(session, model, row.instance_type, "reference", figure.source_detail):
                continue
            session.add(
                _run(
                    model,
                    row.instance_type,
                    "reference",
                    figure.source_detail,
                    figure.observed_at,
                    figure.output_tokens_per_second,
                    gpu_count=figure.gpu_count,
                    tensor_parallel=figure.tensor_parallel,
                    engine=figure.engine,
                    workload_id="llm-price-compass-1000-prompts",
                )
            )
            added += 1
    return added


@dataclass(frozen=True)
class _Anchor:
    instance_type: str
    accelerator_name: str
    gpu_count: int
    bandwidth: float
    tokens_per_second: float
    source: str
    model_scale: float


def _add_estimates(
    session: Session, model: str, catalog: list[InstanceTypeModel], now: datetime
) -> int:
    size = model_size(model)
    if size is None:
        return 0
    anchors = _anchors(session, model, catalog, size)
    if not anchors:
        return 0
    known = {
        instance_type
        for instance_type, fact in best_goodput(session, model=model).items()
        if fact.source != "estimated"
    }
    added = 0
    for row in catalog:
        if row.instance_type in known:
            continue
        bandwidth = gpu_bandwidth(row.accelerator_name, row.accelerator_memory_mib_each)
        if bandwidth is None or row.accelerator_count <= 0:
            continue
        if not model_fits(
            size,
            gpu_count=row.accelerator_count,
            gpu_memory_mib_each=row.accelerator_memory_mib_each,
        ):
            continue
        same_gpu = [a for a in anchors if a.accelerator_name == row.accelerator_name]
        anchor = (same_gpu or anchors)[0]
        value = (
            anchor.tokens_per_second
            * (bandwidth / anchor.bandwidth)
            * (row.accelerator_count / anchor.gpu_count)
            * anchor.model_scale
        )
        detail = (
            f"scaled from {anchor.source} {anchor.instance_type} ({anchor.tokens_per_second:.1f} "
            f"tok/s) by bandwidth {bandwidth:g}/{anchor.bandwidth:g} GB/s x GPUs "
            f"{row.accelerator_count}/{anchor.gpu_count}"
            + (f" x weights {anchor.model_scale:.3g}" if anchor.model_scale != 1.0 else "")
            + f" = {value:.1f} tok/s"
        )
        if _exists(session, model, row.instance_type, "estimated", detail):
            continue
        session.add(
            _run(
                model,
                row.instance_type,
                "estimated",
                detail,
                now,
                value,
                gpu_count=row.accelerator_count,
                tensor_parallel=row.accelerator_count,
                engine="vllm",
                workload_id="estimate",
            )
        )
        added += 1
    return added


def _anchors(
    session: Session, model: str, catalog: list[InstanceTypeModel], size: ModelSize
) -> list[_Anchor]:
    """Figures estimates may scale from, best first: the model's own non-estimated figures,
    else the default model's (scaled by weight size)."""
    by_type = {row.instance_type: row for row in catalog}
    for anchor_model in (model, DEFAULT_MODEL):
        anchor_size = model_size(anchor_model)
        if anchor_size is None:
            continue
        scale = anchor_size.weights_gib / size.weights_gib
        found: list[tuple[tuple[int, int, int], _Anchor]] = []
        for instance_type, fact in best_goodput(session, model=anchor_model).items():
            row = by_type.get(instance_type)
            if fact.source == "estimated" or row is None:
                continue
            if fact.source == "reference" and not _is_anchor_reference(fact.source_detail):
                continue
            bandwidth = gpu_bandwidth(row.accelerator_name, row.accelerator_memory_mib_each)
            if bandwidth is None or fact.gpu_count <= 0:
                continue
            anchor = _Anchor(
                instance_type,
                row.accelerator_name,
                fact.gpu_count,
                bandwidth,
                fact.goodput_tokens_per_second,
                fact.source,
                scale,
            )
            rank = (GOODPUT_PREFERENCE.index(fact.source), fact.gpu_count, row.vcpus)
            found.append((rank, anchor))
        if found:
            # Provenance first; among equals the smallest instance (fewest GPUs, then vCPUs).
            found.sort(key=lambda item: (item[0], item[1].instance_type))
            return [anchor for _rank, anchor in found]
    return []


def _is_anchor_reference(source_detail: str) -> bool:
    return any(f.source_detail == source_detail and f.anchor for f in REFERENCE_FIGURES)


def _exists(session: Session, model: str, instance_type: str, source: str, detail: str) -> bool:
    query = sa.select(BenchmarkRunModel.id).where(
        BenchmarkRunModel.model == model,
        BenchmarkRunModel.instance_type == instance_type,
        BenchmarkRunModel.source == source,
        BenchmarkRunModel.source_detail == detail[:512],
    )
    return session.scalar(query.limit(1)) is not None


def _run(
    model: str,
    instance_type: str,
    source: str,
    detail: str,
    observed_at: datetime,
    tokens_per_second: float,
    *,
    gpu_count: int,
    tensor_parallel: int,
    engine: str,
    workload_id: str,
) -> BenchmarkRunModel:
    return BenchmarkRunModel(
        source=source,
        source_detail=detail[:512],
        observed_at=observed_at,
        model=model,
        instance_type=instance_type,
        gpu_count=gpu_count,
        tensor_parallel=tensor_parallel,
        engine=engine,
        workload_id=workload_id,
        # Not SLO-bounded: published maximum-throughput figures and scalings of them.
        ttft_p95_ms_slo=0.0,
        tpot_p95_ms_slo=0.0,
        goodput_tokens_per_second=tokens_per_second,
        status="complete",
        details={"slo_checked": False},
    )
