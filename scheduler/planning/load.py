"""Reading what a plan needs from the oracle, in one short read-only transaction.

Only SQLAlchemy Core: the queries read the tables of :mod:`oracle.tables` through a connection,
so that a plan loads no ORM (about 0.1 s of a command's start-up)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.capacity import unavailable_pools
from oracle.errors import InputError, OracleError
from oracle.mix import PRESETS, resolve_mix
from oracle.observations import load_observations
from oracle.quotas import latest_quotas
from oracle.tables import benchmark_runs, instance_types, on_demand_prices, spot_prices
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
    with engine.connect() as connection:
        mix = load_mix(connection, model=model, workload=workload) if workload else None
        goodput = best_goodput(connection, model=model) if mix is None else type_facts(mix)
        if types is None:
            types = sorted(goodput)
        stats = pool_stats(
            connection,
            as_of=as_of,
            regions=regions,
            instance_types=types,
            history_days=planning_history_days(config),
        )
        offers = on_demand_offers(connection, as_of=as_of, regions=regions, instance_types=types)
        specs = {
            row.instance_type: InstanceSpec(
                row.instance_type,
                row.vcpus,
                row.accelerator_name,
                row.accelerator_count,
                row.accelerator_memory_mib_each,
            )
            for row in connection.execute(sa.select(instance_types))
        }
        quotas = latest_quotas(connection, as_of=as_of, regions=regions)
        unavailable = unavailable_pools(connection, as_of=as_of)
        observations = load_observations(
            connection, as_of=as_of, regions=regions, instance_types=types
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


def load_mix(session: sa.Connection, *, model: str, workload: str) -> WorkloadMix:
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
    with engine.connect() as connection:
        has_prices = connection.scalar(sa.select(spot_prices.c.id).limit(1)) is not None
        has_prices = has_prices or (
            connection.scalar(sa.select(on_demand_prices.c.id).limit(1)) is not None
        )
        runs = benchmark_runs.c
        has_goodput = (
            connection.scalar(sa.select(runs.id).where(runs.model == model).limit(1)) is not None
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
