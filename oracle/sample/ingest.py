"""Writes the sample market into the oracle through its bulk write path, every row as "sample".

Generation needs no session; each region's rows are generated, then written, so memory stays
bounded. Everything goes in one transaction: an ingest is all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from oracle import db
from oracle.errors import InputError
from oracle.models import (
    AvailabilityZoneModel,
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OfferingModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    SpotPriceModel,
)
from oracle.sample import catalog, generator
from oracle.sample.catalog import SamplePool
from oracle.store import IngestRecorder, insert_ignore

SOURCE = "sample"
PRODUCT_DESCRIPTION = "Linux/UNIX"
OPERATING_SYSTEM = "Linux"
#: Target capacities of the sample's placement scores (the config's default).
DEFAULT_TARGET_CAPACITIES = (1, 4, 16)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ingest_sample(
    engine: Engine,
    *,
    seed: int,
    days: int = 90,
    end: datetime | None = None,
    regions: Sequence[str] | None = None,
    instance_types: Sequence[str] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
    target_capacities: Sequence[int] = DEFAULT_TARGET_CAPACITIES,
    changes_per_day_scale: float = 1.0,
) -> dict[str, int]:
    """Generate ``days`` of the sample market ending at ``end`` (default: now) and store it.

    Returns the rows inserted per table; re-ingesting the same window adds nothing.
    ``on_progress(region, spot_rows_inserted)`` is called as each region's prices are written.
    """
    if days <= 0:
        raise InputError(f"--days must be a positive number of days (got {days})")
    end = _aware(end or datetime.now(UTC))
    start = end - timedelta(days=days)
    pools = catalog.pools(regions=regions, instance_types=instance_types)
    detail = f"seed={seed} days={days} end={end.isoformat()} pools={len(pools)}"
    recorder = IngestRecorder(source=SOURCE, kind="sample", detail=detail)
    counts: dict[str, int] = {}
    with db.transaction(engine) as session:
        run = recorder.finish(session, rows=0, status="running")
        counts["instance_types"] = insert_ignore(
            session, InstanceTypeModel, instance_type_rows(pools, observed_at=end)
        )
        counts["availability_zones"] = insert_ignore(
            session, AvailabilityZoneModel, zone_rows(pools, observed_at=end)
        )
        counts["offerings"] = insert_ignore(
            session, OfferingModel, offering_rows(pools, observed_at=end)
        )
        counts["on_demand_prices"] = insert_ignore(
            session, OnDemandPriceModel, on_demand_rows(pools)
        )
        counts["spot_prices"] = 0
        for region, region_pools in _by_region(pools):
            histories = generator.spot_histories(
                region_pools,
                seed=seed,
                start=start,
                end=end,
                changes_per_day_scale=changes_per_day_scale,
            )
            inserted = insert_ignore(
                session, SpotPriceModel, spot_rows(histories, seed=seed, ingest_run_id=run.id)
            )
            counts["spot_prices"] += inserted
            if on_progress is not None:
                on_progress(region, inserted)
        counts["placement_scores"] = insert_ignore(
            session,
            PlacementScoreModel,
            placement_rows(pools, seed=seed, start=start, end=end, capacities=target_capacities),
        )
        counts["interruption_frequencies"] = insert_ignore(
            session,
            InterruptionFrequencyModel,
            advisor_rows(pools, seed=seed, start=start, end=end),
        )
        run.rows = sum(counts.values())
        run.status = "ok"
        run.duration_s = (datetime.now(UTC) - run.started_at).total_seconds()
    return counts


def spot_rows(
    histories: Iterable[generator.PoolHistory], *, seed: int, ingest_run_id: int | None = None
) -> Iterator[dict[str, Any]]:
    """spot_prices rows of generated histories; a change is observed when it happens."""
    detail = f"generator seed={seed}"
    for history in histories:
        pool = history.pool
        for seconds, price in zip(
            history.times_s.tolist(), history.prices_usd_per_hour.tolist(), strict=True
        ):
            moment = _EPOCH + timedelta(seconds=seconds)
            yield {
                "source": SOURCE,
                "source_detail": detail,
                "observed_at": moment,
                "region": pool.region,
                "zone": pool.availability_zone_id,
                "availability_zone": pool.availability_zone,
                "availability_zone_id": pool.availability_zone_id,
                "instance_type": pool.instance_type,
                "product_description": PRODUCT_DESCRIPTION,
                "timestamp": moment,
                "price_usd_per_hour": price,
                "ingest_run_id": ingest_run_id,
            }


def instance_type_rows(
    pools: Sequence[SamplePool], *, observed_at: datetime
) -> list[dict[str, Any]]:
    names = sorted({pool.instance_type for pool in pools})
    rows = []
    for name in names:
        spec = catalog.INSTANCE_TYPES[name]
        rows.append(
            {
                "source": SOURCE,
                "source_detail": "embedded catalog (moto DescribeInstanceTypes; AWS P3 page)",
                "observed_at": observed_at,
                "instance_type": name,
                "family": spec.family,
                "accelerator_name": spec.accelerator_name,
                "accelerator_manufacturer": spec.accelerator_manufacturer,
                "accelerator_count": spec.accelerator_count,
                "accelerator_memory_mib_each": spec.accelerator_memory_mib_each,
                "vcpus": spec.vcpus,
                "memory_mib": spec.memory_mib,
                "architecture": spec.architecture,
            }
        )
    return rows


def zone_rows(pools: Sequence[SamplePool], *, observed_at: datetime) -> list[dict[str, Any]]:
    zones = sorted(
        {(pool.availability_zone_id, pool.availability_zone, pool.region) for pool in pools}
    )
    return [
        {
            "source": SOURCE,
            "source_detail": "moto's AZ name mapping (one account's view)",
            "observed_at": observed_at,
            "zone_id": zone_id,
            "zone_name": zone_name,
            "region": region,
        }
        for zone_id, zone_name, region in zones
    ]


def offering_rows(pools: Sequence[SamplePool], *, observed_at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "source": SOURCE,
            "source_detail": "SkyPilot AWS catalog offerings",
            "observed_at": observed_at,
            "region": pool.region,
            "zone": pool.availability_zone_id,
            "availability_zone": pool.availability_zone,
            "availability_zone_id": pool.availability_zone_id,
            "instance_type": pool.instance_type,
        }
        for pool in pools
    ]


def on_demand_rows(pools: Sequence[SamplePool]) -> list[dict[str, Any]]:
    """Every list price of the catalog's timeline; a price is known from when it takes effect."""
    rows = []
    for region, instance_type in sorted({(pool.region, pool.instance_type) for pool in pools}):
        cut = catalog.PRICE_CUTS.get(catalog.family(instance_type))
        for effective, price in catalog.on_demand_timeline(instance_type, region):
            detail = "SkyPilot AWS catalog list price"
            if cut is not None and effective == cut.effective:
                detail = f"list price after the cut ({cut.source})"[:512]
            rows.append(
                {
                    "source": SOURCE,
                    "source_detail": detail,
                    "observed_at": effective,
                    "region": region,
                    "instance_type": instance_type,
                    "operating_system": OPERATING_SYSTEM,
                    "effective_date": effective,
                    "price_usd_per_hour": price,
                }
            )
    return rows


def placement_rows(
    pools: Sequence[SamplePool],
    *,
    seed: int,
    start: datetime,
    end: datetime,
    capacities: Sequence[int],
) -> Iterator[dict[str, Any]]:
    samples = generator.placement_samples(
        pools, seed=seed, start=start, end=end, target_capacities=capacities
    )
    for sample in samples:
        yield {
            "source": SOURCE,
            "source_detail": f"generator seed={seed}",
            "observed_at": sample.observed_at,
            "region": sample.region,
            "scope": sample.availability_zone_id or "region",
            "availability_zone_id": sample.availability_zone_id,
            "instance_types": sample.instance_type,
            "target_capacity": sample.target_capacity,
            "score": sample.score,
        }


def advisor_rows(
    pools: Sequence[SamplePool], *, seed: int, start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    for sample in generator.advisor_samples(pools, seed=seed, start=start, end=end):
        label, band_max = generator.ADVISOR_BANDS[sample.band_index]
        yield {
            "source": SOURCE,
            "source_detail": f"generator seed={seed}",
            "observed_at": sample.observed_at,
            "region": sample.region,
            "instance_type": sample.instance_type,
            "operating_system": OPERATING_SYSTEM,
            "band_index": sample.band_index,
            "band_label": label,
            "band_max_pct": band_max,
            "savings_pct": sample.savings_pct,
        }


def _by_region(pools: Sequence[SamplePool]) -> list[tuple[str, list[SamplePool]]]:
    grouped: dict[str, list[SamplePool]] = {}
    for pool in pools:
        grouped.setdefault(pool.region, []).append(pool)
    return sorted(grouped.items())


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InputError(f"end={moment.isoformat()} has no time zone; pass an aware UTC time")
    return moment.astimezone(UTC)
