r"""Goodput per workload bucket for every instance type: measured where measured, else scaled.

The bandwidth-scaled estimator of :mod:`oracle.reference`, extended to request sizes. A bucket
is a representative request of ``I`` prompt tokens and ``O`` output tokens. On one instance of
total dense BF16 compute ``F`` (FLOP/s) and memory bandwidth ``BW`` (bytes/s), a model of ``N``
parameters and ``W`` weight bytes spends, per request (the roofline model: prefill is compute
bound, decoding memory bound; Yuan et al., "LLM Inference Unveiled: Survey and Roofline Model
Insights", arXiv 2402.16363, §3),

    t(I, O) = 2 N I / F  +  O W / (b BW)        seconds of the instance per request

with ``b`` requests sharing each decode step's weight read (:data:`DECODE_BATCH`), so its
output rate is ``O / t(I, O)``. Decode-bound buckets (small ``I / O``) scale with memory
bandwidth, prefill-bound ones (large ``I / O``) with compute, and every bucket in between with
the blend the formula gives. This is why the cheapest GPU depends on request size (Mélange,
arXiv 2404.14527, §4: an A10G gives up to 72% more tokens per dollar than an A100 on small
requests, the A100 38% more on large ones).

For instance type ``t`` and bucket ``k`` of shape (I, O), the figure is, in order:

1. a measured or imported figure of (t, k) for the workload (``scheduler bench run
   --workload``), as is;
2. a measured or imported figure of bucket k on another type a (same GPU first, then the most
   trusted and newest), scaled by the rule: ``g_a * t_a(I, O) / t_t(I, O)``;
3. the type's own one-number goodput ``g_t`` (:func:`oracle.goodput.best_goodput`, any
   source), taken at the reference shape (:data:`REFERENCE_SHAPE`) and moved to the bucket's:
   ``g_t * [O / t_t(I, O)] / [O_r / t_t(I_r, O_r)]``.

Steps 2 and 3 give ``source = "estimated"`` facts (not stored; computed when planning) whose
detail names the anchor, and whose observation time is the anchor's. Types whose GPU has no
compute figure in :data:`GPU_DENSE_BF16_TFLOPS` get no estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from oracle.goodput import GOODPUT_PREFERENCE, GoodputFact, best_bucket_goodput, best_goodput
from oracle.reference import MODEL_ALIASES, ModelSize, gpu_bandwidth, model_fits, model_size
from oracle.tables import instance_types

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: An ``instance_types`` row as a query returns it.
TypeRow = sa.Row[Any]

#: Dense (no sparsity) FP16/BF16 tensor TFLOPS of one GPU, from the vendors' data sheets:
#: T4 65 (nvidia.com/en-us/data-center/tesla-t4, FP16 mixed precision); A10G 70 (AWS's A10
#: variant, lower tensor compute than the A10's 125: baseten.co/blog/
#: nvidia-a10-vs-a10g-for-ml-model-inference); L4 121 (data sheet 242 with sparsity);
#: L40S 362 (733 with sparsity); V100 125 (SXM2 tensor); A100 312 (40 and 80 GB);
#: H100 989 (SXM, 1979 with sparsity); H200 989; B200 2250 (HGX B200, 4500 with sparsity).
GPU_DENSE_BF16_TFLOPS = {
    "T4": 65.0,
    "T4g": 65.0,
    "A10G": 70.0,
    "L4": 121.0,
    "L40S": 362.0,
    "V100": 125.0,
    "A100": 312.0,
    "H100": 989.0,
    "H200": 989.0,
    "B200": 2250.0,
}
#: Requests sharing one decode step (``b`` above): a chosen constant, not a measurement. It
#: sets where a bucket turns from decode-bound to prefill-bound, at I / O = F / (b BW) (2 FLOP
#: and 2 bytes per parameter cancel): about 3.6 on an A10G, 4.8 on an A100 40 GB, 9.2 on an H100.
DECODE_BATCH = 32
#: (input, output) tokens the one-number goodput figures stand for: the llm-price-compass runs
#: the reference figures come from (1000 ShareGPT-like prompts, 215,196 input tokens; the L4
#: run's 197,739 output tokens), rounded.
REFERENCE_SHAPE = (215, 198)
#: Sources whose per-bucket figures count as observations (steps 1 and 2).
OBSERVED = ("measured", "imported")


@dataclass(frozen=True)
class BucketShape:
    """A bucket by name and representative lengths (``bench.buckets.Bucket`` without its share)."""

    name: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class GpuRoof:
    """What the rule needs of one instance type: total compute and bandwidth."""

    accelerator_name: str
    flops: float
    bandwidth_bytes_per_s: float


def bucket_goodput(
    session: Session | sa.Connection,
    *,
    model: str,
    workload_id: str,
    buckets: Sequence[BucketShape],
) -> dict[str, dict[str, GoodputFact]]:
    """Instance type -> bucket -> goodput fact, by the rule of the module docstring; types
    with no figure for any bucket are left out."""
    model = MODEL_ALIASES.get(model, model)
    size = model_size(model)
    catalog = {row.instance_type: row for row in session.execute(sa.select(instance_types))}
    roofs = {name: roof for name, row in catalog.items() if (roof := gpu_roof(row)) is not None}
    observed = best_bucket_goodput(session, model=model, workload_id=workload_id)
    single = best_goodput(session, model=model)
    facts: dict[str, dict[str, GoodputFact]] = {}
    for instance_type in sorted(set(catalog) | set(observed)):
        row = catalog.get(instance_type)
        if row is not None and size is not None and not _fits(size, row):
            continue
        per_bucket: dict[str, GoodputFact] = {}
        for bucket in buckets:
            fact = observed.get(instance_type, {}).get(bucket.name)
            if fact is not None and fact.source in OBSERVED:
                per_bucket[bucket.name] = fact
                continue
            if size is None or instance_type not in roofs:
                continue
            estimate = _from_other_type(
                instance_type, bucket, roofs, observed, size
            ) or _from_one_number(instance_type, bucket, roofs, single.get(instance_type), size)
            if estimate is not None:
                per_bucket[bucket.name] = estimate
        if per_bucket:
            facts[instance_type] = per_bucket
    return facts


def request_seconds(roof: GpuRoof, size: ModelSize, input_tokens: int, output_tokens: int) -> float:
    """``t(I, O)`` of the module docstring: instance seconds per request."""
    parameters = size.params_billion * 1e9
    weight_bytes = parameters * size.bytes_per_param
    prefill_s = 2 * parameters * input_tokens / roof.flops
    decode_s = output_tokens * weight_bytes / (DECODE_BATCH * roof.bandwidth_bytes_per_s)
    return prefill_s + decode_s


def gpu_roof(row: TypeRow) -> GpuRoof | None:
    """The instance's total compute and bandwidth, or ``None`` for GPUs not in the tables."""
    tflops = GPU_DENSE_BF16_TFLOPS.get(row.accelerator_name)
    bandwidth = gpu_bandwidth(row.accelerator_name, row.accelerator_memory_mib_each)
    if tflops is None or bandwidth is None or row.accelerator_count <= 0:
        return None
    return GpuRoof(
        row.accelerator_name,
        tflops * 1e12 * row.accelerator_count,
        bandwidth * 1e9 * row.accelerator_count,
    )


def _fits(size: ModelSize, row: TypeRow) -> bool:
    return model_fits(
        size, gpu_count=row.accelerator_count, gpu_memory_mib_each=row.accelerator_memory_mib_each
    )


def _from_other_type(
    instance_type: str,
    bucket: BucketShape,
    roofs: dict[str, GpuRoof],
    observed: dict[str, dict[str, GoodputFact]],
    size: ModelSize,
) -> GoodputFact | None:
    target = roofs[instance_type]
    anchors = [
        per_bucket[bucket.name]
        for other, per_bucket in observed.items()
        if other != instance_type
        and other in roofs
        and bucket.name in per_bucket
        and per_bucket[bucket.name].source in OBSERVED
    ]
    if not anchors:
        return None
    anchors.sort(
        key=lambda f: (
            roofs[f.instance_type].accelerator_name != target.accelerator_name,
            GOODPUT_PREFERENCE.index(f.source),
            -f.observed_at.timestamp(),
            f.instance_type,
        )
    )
    anchor = anchors[0]
    ratio = request_seconds(
        roofs[anchor.instance_type], size, bucket.input_tokens, bucket.output_tokens
    ) / request_seconds(target, size, bucket.input_tokens, bucket.output_tokens)
    value = anchor.goodput_tokens_per_second * ratio
    detail = (
        f"bucket {bucket.name} scaled from {anchor.source} {anchor.instance_type} "
        f"({anchor.goodput_tokens_per_second:.1f} tok/s, run {anchor.run_id}) by the roofline "
        f"time of a {bucket.input_tokens}/{bucket.output_tokens}-token request: x{ratio:.3f} = "
        f"{value:.1f} tok/s"
    )
    return _estimate(anchor, instance_type, bucket, value, detail)


def _from_one_number(
    instance_type: str,
    bucket: BucketShape,
    roofs: dict[str, GpuRoof],
    single: GoodputFact | None,
    size: ModelSize,
) -> GoodputFact | None:
    if single is None:
        return None
    roof = roofs[instance_type]
    ref_in, ref_out = REFERENCE_SHAPE
    rate = bucket.output_tokens / request_seconds(
        roof, size, bucket.input_tokens, bucket.output_tokens
    )
    ref_rate = ref_out / request_seconds(roof, size, ref_in, ref_out)
    ratio = rate / ref_rate
    value = single.goodput_tokens_per_second * ratio
    detail = (
        f"bucket {bucket.name} from {single.source} {instance_type} one-number goodput "
        f"({single.goodput_tokens_per_second:.1f} tok/s at about {ref_in}/{ref_out} tokens) by "
        f"the roofline rate of a {bucket.input_tokens}/{bucket.output_tokens}-token request: "
        f"x{ratio:.3f} = {value:.1f} tok/s"
    )
    return _estimate(single, instance_type, bucket, value, detail)


def _estimate(
    anchor: GoodputFact, instance_type: str, bucket: BucketShape, value: float, detail: str
) -> GoodputFact:
    return GoodputFact(
        model=anchor.model,
        instance_type=instance_type,
        goodput_tokens_per_second=value,
        source="estimated",
        source_detail=detail,
        observed_at=anchor.observed_at,
        gpu_count=anchor.gpu_count,
        tensor_parallel=anchor.tensor_parallel,
        workload_id=anchor.workload_id,
        run_id=anchor.run_id,
        bucket=bucket.name,
    )
