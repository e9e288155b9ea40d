"""The mix-aware plan against the single-number plan (``python -m benchmarks.planner --workload
chat``; not a test).

On the embedded sample market (every GPU type in every region and AZ, the reference and
estimated goodput of the default model), per-bucket goodput comes from the Mélange paper's
published ratios (Griggs et al., "Mélange: Cost Efficient Large Language Model Serving by
Exploiting GPU Heterogeneity", arXiv 2404.14527, §4 and Fig. 1: for Llama2-7B an A10G gives up to
72% more tokens per dollar than an A100 on small requests, and the A100 38% more on large ones):

- the A100 (p4d.24xlarge) keeps the roofline estimate of :mod:`oracle.bucket_goodput` per bucket;
- the A10G (g5.xlarge) gets, per bucket, the goodput at which its tokens per dollar (at the two
  types' on-demand prices in us-east-1) are ``r_k`` times the A100's: ``r = 1.72`` on the
  smallest bucket, ``1 / 1.38`` on the largest, geometric steps between (buckets by size);
- both are stored as ``imported`` per-bucket figures; every other type is scaled from them by
  the roofline rule (same GPU first).

The single-number plan is today's planner with each type's one number being what it serves of
the whole mix alone (``1 / sum_k w_k / g_k``: a one-number benchmark of the mix); the mix-aware
plan routes each bucket's share inside the MILP. Same SLO, hedge and constraints. The goal: the
mix-aware plan costs <= 0.85x the single-number plan and solves in under 1 s.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle import db
from oracle.bucket_goodput import BucketShape, bucket_goodput
from oracle.mix import BucketMix, resolve_mix
from oracle.models import BenchmarkRunModel, OnDemandPriceModel
from oracle.reference import ensure_goodput_figures
from oracle.sample import ingest_sample
from scheduler.config import PlannerConfig
from scheduler.planner import plan_from_data
from scheduler.planning.candidates import PlanningData
from scheduler.planning.load import load_planning_data
from scheduler.planning.model import Plan

END = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 2026
SMALL_TYPE, LARGE_TYPE = "g5.xlarge", "p4d.24xlarge"
#: Mélange §4: tokens per dollar, A10G over A100 on the smallest requests, A100 over A10G on the
#: largest.
A10G_ADVANTAGE_SMALL = 1.72
A100_ADVANTAGE_LARGE = 1.38
PRICE_REGION = "us-east-1"


def run(*, workload: str, slo: float, repeat: int) -> None:
    config = PlannerConfig()
    mix = resolve_mix(workload)
    if mix is None:
        raise SystemExit(f"unknown workload {workload!r}: a preset or a mix file")
    with tempfile.TemporaryDirectory() as directory:
        engine = db.make_engine(f"sqlite:///{Path(directory) / 'bench.sqlite3'}")
        db.upgrade(engine)
        ingest_sample(engine, seed=SEED, end=END)
        ensure_goodput_figures(engine, model=config.model)
        figures = _store_melange_figures(engine, config.model, mix.workload_id, mix)
        data = load_planning_data(
            engine, config=config, model=config.model, as_of=END, workload=workload
        )
        engine.dispose()
    assert data.mix is not None
    print(f"workload {mix.workload_id} ({mix.source}); per-bucket goodput (tok/s):")
    print(f"  {'bucket':<24} {'share':>6} {SMALL_TYPE:>10} {LARGE_TYPE:>13}")
    for name, share in zip(data.mix.bucket_names, data.mix.shares, strict=True):
        print(
            f"  {name:<24} {share:>6.1%} {figures[SMALL_TYPE][name]:>10.0f} "
            f"{figures[LARGE_TYPE][name]:>13.0f}"
        )
    # The single-number planner: one figure per type, what it serves of the whole mix alone.
    single_goodput = {
        instance_type: dataclasses.replace(
            fact, goodput_tokens_per_second=data.mix.rate_alone(instance_type), bucket=""
        )
        for instance_type, fact in data.goodput.items()
        if data.mix.rate_alone(instance_type) > 0
    }
    single_data = dataclasses.replace(data, goodput=single_goodput, mix=None)
    single, single_s = _planned(single_data, config, slo, repeat)
    mixed, mixed_s = _planned(data, config, slo, repeat)
    print(f"\nSLO {slo:,.0f} tok/s, hedge {config.hedge}, {mixed.candidates} pools:")
    for label, plan, seconds in (
        ("single-number", single, single_s),
        ("mix-aware", mixed, mixed_s),
    ):
        print(
            f"  {label:<13} ${plan.cost_usd_per_hour:>8.2f}/h, {plan.tokens_per_second:>8,.0f} "
            f"tok/s, {plan.tokens_per_second_after_worst_loss:>8,.0f} after the worst loss; "
            f"solve {seconds['solve']:.3f} s, plan {seconds['total']:.3f} s wall / "
            f"{seconds['cpu']:.3f} s CPU (medians of {repeat})"
        )
        for allocation in plan.allocations:
            routes = ", ".join(f"{b} {t:,.0f}" for b, t in allocation.buckets.items())
            print(
                f"      {allocation.count} x {allocation.pool.instance_type} "
                f"{allocation.pool.market} {allocation.pool.zone or allocation.pool.region}"
                + (f": {routes}" if routes else "")
            )
    ratio = mixed.cost_usd_per_hour / single.cost_usd_per_hour
    print(
        f"\nmix-aware / single-number cost: {ratio:.3f} (goal <= 0.85); mix-aware solve "
        f"{mixed_s['solve']:.3f} s wall, whole plan {mixed_s['cpu']:.3f} s CPU (goal < 1 s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


def _store_melange_figures(
    engine: Engine, model: str, workload_id: str, mix: BucketMix
) -> dict[str, dict[str, float]]:
    """Store the two types' per-bucket figures (module docstring); return them."""
    shapes = [BucketShape(b.name, b.input_tokens, b.output_tokens) for b in mix.buckets]
    with db.session_factory(engine)() as session:
        estimates = bucket_goodput(session, model=model, workload_id=workload_id, buckets=shapes)
        prices = {
            row.instance_type: row.price_usd_per_hour
            for row in session.scalars(
                sa.select(OnDemandPriceModel).where(
                    OnDemandPriceModel.region == PRICE_REGION,
                    OnDemandPriceModel.instance_type.in_((SMALL_TYPE, LARGE_TYPE)),
                )
            )
        }
    large = {name: fact.goodput_tokens_per_second for name, fact in estimates[LARGE_TYPE].items()}
    # Buckets by size (input plus output tokens): geometric steps of the advantage between ends.
    order = sorted(mix.buckets, key=lambda b: b.input_tokens + b.output_tokens)
    low, high = math.log(A10G_ADVANTAGE_SMALL), -math.log(A100_ADVANTAGE_LARGE)
    small: dict[str, float] = {}
    for index, bucket in enumerate(order):
        step = index / max(1, len(order) - 1)
        advantage = math.exp(low + (high - low) * step)
        per_dollar = large[bucket.name] / prices[LARGE_TYPE]
        small[bucket.name] = advantage * per_dollar * prices[SMALL_TYPE]
    detail = (
        "derived from Melange (arXiv 2404.14527) tokens-per-dollar ratios A10G/A100 "
        f"{A10G_ADVANTAGE_SMALL} (small) to 1/{A100_ADVANTAGE_LARGE} (large)"
    )
    with db.transaction(engine) as session:
        for instance_type, figures in ((SMALL_TYPE, small), (LARGE_TYPE, large)):
            for bucket in mix.buckets:
                session.add(
                    BenchmarkRunModel(
                        source="imported",
                        source_detail=detail,
                        observed_at=END,
                        model=model,
                        instance_type=instance_type,
                        gpu_count=1 if instance_type == SMALL_TYPE else 8,
                        tensor_parallel=1 if instance_type == SMALL_TYPE else 8,
                        engine="vllm",
                        workload_id=workload_id,
                        bucket=bucket.name,
                        ttft_p95_ms_slo=0.0,
                        tpot_p95_ms_slo=0.0,
                        goodput_tokens_per_second=figures[bucket.name],
                        status="complete",
                        details={"bucket": {"share": bucket.share}},
                    )
                )
    return {SMALL_TYPE: small, LARGE_TYPE: large}


def _planned(
    data: PlanningData, config: PlannerConfig, slo: float, repeat: int
) -> tuple[Plan, dict[str, float]]:
    plans, solves, totals, cpus = [], [], [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        plan = plan_from_data(data, config=config, slo_tokens_per_second=slo)
        totals.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
        solves.append(plan.timing_s["solve"])
        plans.append(plan)
    return plans[-1], {
        "solve": statistics.median(solves),
        "total": statistics.median(totals),
        "cpu": statistics.median(cpus),
    }
