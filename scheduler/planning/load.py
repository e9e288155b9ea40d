"""Reading what a plan needs from the oracle, in one short read-only session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from oracle.capacity import unavailable_pools
from oracle.db import session_factory
from oracle.errors import InputError, OracleError
from oracle.mix import PRESETS, resolve_mix
from oracle.models import BenchmarkRunModel, InstanceTypeModel, OnDemandPriceModel, SpotPriceModel
from oracle.observations import load_observations
from oracle.quotas import latest_quotas
from scheduler.config import PlannerConfig, Settings
from scheduler.planning.candidates import InstanceSpec, PlanningData
from scheduler.planning.mix import WorkloadMix, type_facts


def planning_history_days(config: PlannerConfig) -> int:
    """Days of price history the planner reads: 7 for the estimators built on the current price
    and the 7-day mean, 90 for ``p95-30d`` (the oracle's p95 is over 90 days)."""
    return 90 if config.spot_price_estimator == "p95-30d" else 7


def load_planning_data(
    engine: Engine,
    *,
    config: PlannerConfig,
    model: str,
    as_of: datetime | None = None,
    workload: str | None = None,
) -> PlanningData:
    """Every fact a plan for ``model`` stands on, as known at ``as_of`` (default: now);
    ``workload``: a request mix (preset or file) whose per-bucket goodput is read too."""
    from oracle.goodput import best_goodput
    from oracle.stats import on_demand_offers, pool_stats

    as_of = as_of or datetime.now(UTC)
    regions = config.regions_allow or None
    types = config.instance_types_allow or None
    with session_factory(engine)() as session:
        mix = load_mix(session, model=model, workload=workload) if workload else None
        goodput = best_goodput(session, model=model) if mix is None else type_facts(mix)
        if types is None:
            types = sorted(goodput)
        stats = pool_stats(
            session,
            as_of=as_of,
            regions=regions,
            instance_types=types,
            history_days=planning_history_days(config),
        )
        offers = on_demand_offers(session, as_of=as_of, regions=regions, instance_types=types)
        specs = {
            row.instance_type: InstanceSpec(
                row.instance_type,
                row.vcpus,
                row.accelerator_name,
                row.accelerator_count,
                row.accelerator_memory_mib_each,
            )
            for row in session.scalars(sa.select(InstanceTypeModel))
        }
        quotas = latest_quotas(session, as_of=as_of, regions=regions)
        unavailable = unavailable_pools(session, as_of=as_of)
        observations = load_observations(
            session, as_of=as_of, regions=regions, instance_types=types
        )
    return PlanningData(
        as_of=as_of,
        model=model,
        pool_stats=stats,
        on_demand=offers,
        goodput=goodput,
        instance_specs=specs,
        quotas=quotas,
        unavailable=unavailable,
        observations=observations,
        mix=mix,
    )


def load_mix(session: Session, *, model: str, workload: str) -> WorkloadMix:
    """The request mix ``workload`` names and every type's goodput per bucket (measured, else
    estimated by :mod:`oracle.bucket_goodput`); bad names raise InputError."""
    from oracle.bucket_goodput import BucketShape, bucket_goodput

    mix = resolve_mix(workload)
    if mix is None:
        raise InputError(
            f"unknown workload {workload!r}: name a preset ({', '.join(PRESETS)}), a ShareGPT "
            "JSON file or a histogram CSV (input_tokens,output_tokens,count)"
        )
    shapes = [BucketShape(b.name, b.input_tokens, b.output_tokens) for b in mix.buckets]
    facts = bucket_goodput(session, model=model, workload_id=mix.workload_id, buckets=shapes)
    return WorkloadMix(
        workload_id=mix.workload_id,
        source=mix.source,
        bucket_names=tuple(b.name for b in mix.buckets),
        shares=tuple(b.share for b in mix.buckets),
        facts=facts,
    )


def ensure_planning_data(
    engine: Engine,
    *,
    settings: Settings,
    model: str,
    on_progress: Callable[[str, int], None] | None = None,
) -> list[str]:
    """On an empty oracle, ingest the embedded sample market and the reference goodput figures
    so that a first plan works; return what was done, in words (empty when nothing was)."""
    done: list[str] = []
    with session_factory(engine)() as session:
        has_prices = session.scalar(sa.select(SpotPriceModel.id).limit(1)) is not None
        has_prices = has_prices or (
            session.scalar(sa.select(OnDemandPriceModel.id).limit(1)) is not None
        )
        has_goodput = (
            session.scalar(
                sa.select(BenchmarkRunModel.id).where(BenchmarkRunModel.model == model).limit(1)
            )
            is not None
        )
    if not has_prices:
        try:
            from oracle.sample import ingest_sample
        except ImportError as error:
            raise OracleError(
                "the oracle holds no prices: run `scheduler oracle sync` or "
                "`scheduler oracle import FILE` first"
            ) from error
        rows = ingest_sample(engine, seed=settings.oracle.sample_seed, on_progress=on_progress)
        done.append(
            f"the oracle was empty: ingested the embedded SAMPLE market "
            f"({sum(rows.values()):,} rows, seed {settings.oracle.sample_seed})"
        )
    if not has_goodput:
        try:
            from oracle.reference import ensure_goodput_figures
        except ImportError as error:
            raise OracleError(
                f"no goodput figures for {model}: run `scheduler bench run` first"
            ) from error
        added = ensure_goodput_figures(engine, model=model)
        if added:
            done.append(
                f"no goodput measured for {model}: stored {added} reference and estimated figures"
            )
    return done
