"""`sync_aws`: fill the oracle from AWS, one region per thread.

Per region the sync runs five kinds in order: ``catalog`` (AZ name-to-ID map, accelerated
instance types, their AZ offerings), ``spot_prices``, ``placement_scores``, ``on_demand_prices``
and ``service_quotas``; then the Spot Advisor feed once for all regions (``advisor``). Each kind
fetches everything first (no database session is open during a network call), then writes in one
short transaction that also records the run in ``ingest_runs`` (rows, duration, status, error).
A kind that fails is recorded as failed and the next kind runs; a region whose catalog fails (not
enabled, opt-in required, bad credentials, anything) is recorded and skipped. The sync fails as a
whole only when no region at all can be listed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from oracle.aws import advisor, instance_types, placement, pricing, quotas, regions, spot_prices
from oracle.aws.clients import AwsClients
from oracle.aws.errors import describe_error
from oracle.aws.kinds import ADVISOR_KIND, REGION_KINDS
from oracle.db import transaction
from oracle.errors import DatabaseError, InputError, OracleError
from oracle.models import (
    AvailabilityZoneModel,
    IngestRunModel,
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OfferingModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    ServiceQuotaModel,
    SpotPriceModel,
)
from oracle.store import IngestRecorder, insert_ignore, upsert

SOURCE = "aws"
#: The ``region`` passed to ``on_progress`` for work that is not about one region.
GLOBAL = "global"

#: on_progress(region, kind, kinds done, kinds in all); kind is "failed" when a region is skipped.
ProgressCallback = Callable[[str, str, int, int], None]
T = TypeVar("T")


class SyncError(OracleError):
    """Nothing could be synced at all (for instance, the regions cannot be listed)."""

    exit_code = 1


@dataclass(frozen=True)
class OracleSyncOptions:
    """What to sync; mirrors the ``[oracle]`` config section (the command line fills it)."""

    regions: Sequence[str] = ()
    instance_types: Sequence[str] = ()
    days: int = 90
    product_description: str = "Linux/UNIX"
    operating_system: str = "Linux"
    placement_target_capacities: Sequence[int] = (1, 4, 16)
    placement_types_per_query: int = 3
    max_parallel_regions: int = 8
    advisor_url: str = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"
    advisor_file: str = ""
    pricing_region: str = "us-east-1"
    #: Kinds to run; the default is all of them.
    kinds: Sequence[str] = (*REGION_KINDS, ADVISOR_KIND)
    #: The sync's clock (aware UTC); tests fix it.
    now: datetime | None = None


@dataclass(frozen=True)
class KindResult:
    kind: str
    status: str  # "ok" or "failed"
    rows: int
    duration_s: float
    error: str | None = None


@dataclass
class RegionResult:
    region: str
    #: "ok" (every kind), "partial" (catalog ok, some kind failed) or "failed".
    status: str = "ok"
    kinds: list[KindResult] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(result.rows for result in self.kinds)

    @property
    def duration_s(self) -> float:
        return sum(result.duration_s for result in self.kinds)

    @property
    def error(self) -> str | None:
        errors = [f"{result.kind}: {result.error}" for result in self.kinds if result.error]
        return "; ".join(errors) or None


@dataclass
class SyncSummary:
    regions: list[RegionResult]
    advisor: KindResult | None = None

    @property
    def succeeded(self) -> list[str]:
        return [result.region for result in self.regions if result.status != "failed"]

    @property
    def failed(self) -> list[str]:
        return [result.region for result in self.regions if result.status == "failed"]

    def rows_by_kind(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        results = [kind for region in self.regions for kind in region.kinds]
        for result in [*results, *([self.advisor] if self.advisor else [])]:
            totals[result.kind] = totals.get(result.kind, 0) + result.rows
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": SOURCE,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rows": self.rows_by_kind(),
            "regions": [
                {
                    "region": result.region,
                    "status": result.status,
                    "rows": result.rows,
                    "duration_s": round(result.duration_s, 3),
                    "error": result.error,
                    "kinds": [_kind_dict(kind) for kind in result.kinds],
                }
                for result in self.regions
            ],
            "advisor": _kind_dict(self.advisor) if self.advisor else None,
        }


def sync_aws(
    engine: Engine,
    clients: AwsClients,
    *,
    config: OracleSyncOptions,
    on_progress: ProgressCallback | None = None,
) -> SyncSummary:
    """Sync every region in scope from AWS into ``engine``'s database; see the module docstring.

    Raises :class:`InputError` for an unknown region or a bad advisor file (before writing
    anything) and :class:`SyncError` when the regions cannot be listed.
    """
    now = (config.now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    progress = on_progress or _no_progress
    feed_file = advisor.read_feed(Path(config.advisor_file)) if config.advisor_file else None
    chosen, disabled = _choose_regions(clients, config)
    context = _Context(engine, clients, config, now, progress)

    results: list[RegionResult] = [context.disabled(region) for region in disabled]
    workers = max(1, min(config.max_parallel_regions, len(chosen)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oracle-sync") as pool:
        results.extend(pool.map(context.sync_region, chosen))
    results.sort(key=lambda result: result.region)

    advisor_result = None
    if ADVISOR_KIND in config.kinds:
        advisor_result = context.sync_advisor(feed_file, regions=chosen)
    return SyncSummary(regions=results, advisor=advisor_result)


@dataclass
class _Context:
    engine: Engine
    clients: AwsClients
    config: OracleSyncOptions
    now: datetime
    progress: ProgressCallback
    #: Accelerated types seen in any region (the advisor rows are kept for these).
    seen_types: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def disabled(self, region: str) -> RegionResult:
        error = "OptInRequired: the region is not enabled for this account; enable it or drop it"
        result = self._record(region, "catalog", 0.0, error)
        self.progress(region, "failed", 1, 1)
        return RegionResult(region, "failed", [result])

    def sync_region(self, region: str) -> RegionResult:
        # The catalog always runs: every other kind needs the region's types and AZs.
        kinds = ["catalog", *(kind for kind in REGION_KINDS[1:] if kind in self.config.kinds)]
        outcome = RegionResult(region)
        ec2 = self.clients.ec2(region)
        catalog = self._step(
            region, "catalog", lambda: self._fetch_catalog(ec2, region), self._write_catalog
        )
        outcome.kinds.append(catalog.result)
        if catalog.value is None:
            outcome.status = "failed"
            self.progress(region, "failed", len(kinds), len(kinds))
            return outcome
        self.progress(region, "catalog", 1, len(kinds))
        zone_ids = catalog.value.zone_ids
        offered = sorted({offer.instance_type for offer in catalog.value.offerings})
        offered_specs = [spec for spec in catalog.value.specs if spec.instance_type in offered]
        with self.lock:
            self.seen_types.update(offered)
        steps: dict[
            str, tuple[Callable[[], Any], Callable[[Session, Any, IngestRunModel], int]]
        ] = {
            "spot_prices": (
                lambda: self._fetch_spot_prices(ec2, region, offered),
                lambda session, fetched, run: self._write_spot_prices(
                    session, region, zone_ids, fetched, run
                ),
            ),
            "placement_scores": (
                lambda: self._fetch_placement_scores(
                    self.clients.spot_placement(region), region, offered_specs
                ),
                self._write_placement_scores,
            ),
            "on_demand_prices": (
                lambda: self._fetch_on_demand(region, offered),
                self._write_on_demand,
            ),
            "service_quotas": (
                lambda: quotas.get_vcpu_quotas(self.clients.service_quotas(region), region=region),
                self._write_quotas,
            ),
        }
        for done, kind in enumerate(kinds[1:], start=2):
            fetch, write = steps[kind]
            step = self._step(region, kind, fetch, write)
            outcome.kinds.append(step.result)
            if step.result.status != "ok":
                outcome.status = "partial"
            self.progress(region, kind, done, len(kinds))
        return outcome

    def sync_advisor(
        self, feed_file: advisor.AdvisorFeed | None, *, regions: list[str]
    ) -> KindResult:
        def fetch() -> tuple[advisor.AdvisorFeed, list[advisor.AdvisorEntry]]:
            feed = feed_file or advisor.fetch_feed(self.config.advisor_url)
            found = advisor.entries(
                feed,
                regions=regions,
                instance_types=self.seen_types,
                operating_system=self.config.operating_system,
            )
            return feed, found

        def write(
            session: Session,
            fetched: tuple[advisor.AdvisorFeed, list[advisor.AdvisorEntry]],
            _run: IngestRunModel,
        ) -> int:
            feed, found = fetched
            rows = [
                {
                    **asdict(entry),
                    # The feed read from a file is a file; the live URL is AWS's own answer.
                    "source": "file" if feed_file is not None else SOURCE,
                    "source_detail": feed.origin[:512],
                    "observed_at": feed.published_at,
                }
                for entry in found
            ]
            return insert_ignore(session, InterruptionFrequencyModel, rows)

        step = self._step(None, ADVISOR_KIND, fetch, write)
        self.progress(GLOBAL, ADVISOR_KIND, 1, 1)
        return step.result

    # -- fetch (network only) ------------------------------------------------------------------

    def _fetch_catalog(self, ec2: Any, region: str) -> _Catalog:
        zones = regions.describe_availability_zones(ec2, region)
        zone_ids = {zone.zone_name: zone.zone_id for zone in zones}
        specs = instance_types.describe_accelerated_types(
            ec2, instance_types=self.config.instance_types
        )
        offerings = instance_types.describe_offerings(
            ec2, instance_types=[spec.instance_type for spec in specs], zone_ids=zone_ids
        )
        return _Catalog(region, zone_ids, specs, offerings)

    def _fetch_spot_prices(self, ec2: Any, region: str, offered: list[str]) -> _SpotFetch:
        """From the region's watermark for types already stored; a full backfill for new ones."""
        if not offered:
            return _SpotFetch([], "no instance types offered")
        watermarks = self._watermarks(region, offered)
        backfill_start = self.now - timedelta(days=self.config.days)
        requests: list[tuple[list[str], datetime]] = []
        if known := sorted(watermarks):
            # AWS also returns the last change before StartTime; the unique key drops it.
            requests.append((known, max(backfill_start, min(watermarks.values()))))
        if new := sorted(set(offered) - set(watermarks)):
            requests.append((new, backfill_start))
        records: list[spot_prices.SpotPriceRecord] = []
        detail = "; ".join(
            f"{len(types)} type(s) from {start.isoformat()}"
            + (" (watermark)" if start != backfill_start else f" ({self.config.days}-day backfill)")
            for types, start in requests
        )
        for types, start in requests:
            records += spot_prices.describe_spot_price_history(
                ec2,
                instance_types=types,
                product_description=self.config.product_description,
                start=start,
                end=self.now,
            )
        return _SpotFetch(records, detail)

    def _watermarks(self, region: str, offered: list[str]) -> dict[str, datetime]:
        """The newest stored AWS record per instance type in the region (a short read)."""
        statement = (
            sa.select(SpotPriceModel.instance_type, sa.func.max(SpotPriceModel.timestamp))
            .where(
                SpotPriceModel.source == SOURCE,
                SpotPriceModel.region == region,
                SpotPriceModel.instance_type.in_(offered),
                # AWS may name the product with a suffix, e.g. "Linux/UNIX (Amazon VPC)".
                SpotPriceModel.product_description.startswith(
                    self.config.product_description, autoescape=True
                ),
            )
            .group_by(SpotPriceModel.instance_type)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        return {instance_type: latest for instance_type, latest in rows if latest is not None}

    def _fetch_placement_scores(
        self, ec2: Any, region: str, specs: list[instance_types.InstanceTypeSpec]
    ) -> list[placement.PlacementScore]:
        groups = placement.group_instance_types(
            specs, types_per_query=self.config.placement_types_per_query
        )
        scores: list[placement.PlacementScore] = []
        for group in groups:
            for capacity in self.config.placement_target_capacities:
                for single_zone in (True, False):
                    scores += placement.get_spot_placement_scores(
                        ec2,
                        region=region,
                        instance_types=group,
                        target_capacity=capacity,
                        single_availability_zone=single_zone,
                    )
        return scores

    def _fetch_on_demand(self, region: str, offered: list[str]) -> list[pricing.OnDemandPrice]:
        client = self.clients.pricing(self.config.pricing_region)
        prices = []
        for instance_type in offered:
            price = pricing.get_on_demand_price(
                client,
                region=region,
                instance_type=instance_type,
                operating_system=self.config.operating_system,
            )
            if price is not None:
                prices.append(price)
        return prices

    # -- write (one short transaction each) ----------------------------------------------------

    def _write_catalog(self, session: Session, catalog: _Catalog, _run: IngestRunModel) -> int:
        provenance = {"source": SOURCE, "observed_at": self.now}
        zone_rows = [
            {
                "zone_id": zone_id,
                "zone_name": name,
                "region": catalog.region,
                **provenance,
                "source_detail": "DescribeAvailabilityZones",
            }
            for name, zone_id in sorted(catalog.zone_ids.items(), key=lambda item: item[1])
        ]
        # Sorted by key, so concurrent regions upserting shared types lock rows in one order.
        spec_rows = [
            {**asdict(spec), **provenance, "source_detail": "DescribeInstanceTypes"}
            for spec in sorted(catalog.specs, key=lambda spec: spec.instance_type)
        ]
        offering_rows = [
            {
                "region": catalog.region,
                "zone": offer.availability_zone_id or offer.availability_zone,
                "availability_zone": offer.availability_zone,
                "availability_zone_id": offer.availability_zone_id,
                "instance_type": offer.instance_type,
                **provenance,
                "source_detail": "DescribeInstanceTypeOfferings",
            }
            for offer in catalog.offerings
        ]
        rows = upsert(session, AvailabilityZoneModel, zone_rows, key=["zone_id"])
        rows += upsert(session, InstanceTypeModel, spec_rows, key=["instance_type"])
        rows += upsert(
            session, OfferingModel, offering_rows, key=["region", "zone", "instance_type"]
        )
        return rows

    def _write_spot_prices(
        self,
        session: Session,
        region: str,
        zone_ids: dict[str, str],
        fetched: _SpotFetch,
        run: IngestRunModel,
    ) -> int:
        run.detail = fetched.detail[:512]
        rows = [
            {
                "region": region,
                "zone": zone_ids.get(record.availability_zone, record.availability_zone),
                "availability_zone": record.availability_zone,
                "availability_zone_id": zone_ids.get(record.availability_zone),
                "instance_type": record.instance_type,
                "product_description": record.product_description,
                "timestamp": record.timestamp,
                "price_usd_per_hour": record.price_usd_per_hour,
                "source": SOURCE,
                "source_detail": "DescribeSpotPriceHistory",
                # A change record is known from the moment it takes effect.
                "observed_at": record.timestamp,
                "ingest_run_id": run.id,
            }
            for record in fetched.records
        ]
        return insert_ignore(session, SpotPriceModel, rows)

    def _write_placement_scores(
        self, session: Session, scores: list[placement.PlacementScore], _run: IngestRunModel
    ) -> int:
        rows = [
            {
                "region": score.region,
                "scope": score.availability_zone_id or "region",
                "availability_zone_id": score.availability_zone_id,
                "instance_types": ",".join(score.instance_types),
                "target_capacity": score.target_capacity,
                "score": score.score,
                "source": SOURCE,
                "source_detail": "GetSpotPlacementScores",
                "observed_at": self.now,
            }
            for score in scores
        ]
        return insert_ignore(session, PlacementScoreModel, rows)

    def _write_on_demand(
        self, session: Session, prices: list[pricing.OnDemandPrice], _run: IngestRunModel
    ) -> int:
        rows = [
            {
                "region": price.region,
                "instance_type": price.instance_type,
                "operating_system": price.operating_system,
                "effective_date": price.effective_date,
                "price_usd_per_hour": price.price_usd_per_hour,
                "source": SOURCE,
                "source_detail": "Pricing GetProducts",
                "observed_at": self.now,
            }
            for price in prices
        ]
        return insert_ignore(session, OnDemandPriceModel, rows)

    def _write_quotas(
        self, session: Session, found: list[quotas.ServiceQuota], _run: IngestRunModel
    ) -> int:
        rows = [
            {
                "region": quota.region,
                "quota_code": quota.quota_code,
                "quota_name": quota.quota_name,
                "value_vcpus": quota.value_vcpus,
                "source": SOURCE,
                "source_detail": f"Service Quotas ({quota.origin})",
                "observed_at": self.now,
            }
            for quota in found
        ]
        return insert_ignore(session, ServiceQuotaModel, rows)

    # -- one kind: fetch, then write and record ------------------------------------------------

    def _step(
        self,
        region: str | None,
        kind: str,
        fetch: Callable[[], T],
        write: Callable[[Session, T, IngestRunModel], int],
    ) -> _Step[T]:
        started = time.perf_counter()
        recorder = IngestRecorder(source=SOURCE, kind=kind, region=region)
        try:
            value = fetch()
        except InputError:
            raise
        except Exception as error:  # any failure of one region's kind is recorded, not fatal
            message = describe_error(error)
            result = self._record(region, kind, time.perf_counter() - started, message)
            return _Step(result, None)
        try:
            with transaction(self.engine) as session:
                run = recorder.finish(session, rows=0)
                rows = write(session, value, run)
                run.rows = rows
                run.duration_s = time.perf_counter() - started
        except SQLAlchemyError as error:
            # The database, not AWS, failed: nothing of this kind was written; stop here.
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            where = f" of {region}" if region else ""
            raise DatabaseError(
                f"cannot write the {kind}{where} to the database: {reason}; check that it is "
                "reachable and migrated (scheduler db upgrade)"
            ) from error
        return _Step(KindResult(kind, "ok", rows, run.duration_s), value)

    def _record(self, region: str | None, kind: str, duration_s: float, error: str) -> KindResult:
        recorder = IngestRecorder(source=SOURCE, kind=kind, region=region)
        with transaction(self.engine) as session:
            run = recorder.finish(session, rows=0, status="failed", error=error)
            run.duration_s = duration_s
        return KindResult(kind, "failed", 0, duration_s, error)


@dataclass(frozen=True)
class _Step(Generic[T]):
    result: KindResult
    value: T | None


@dataclass(frozen=True)
class _SpotFetch:
    records: list[spot_prices.SpotPriceRecord]
    #: What was asked, for ``ingest_runs.detail``.
    detail: str


@dataclass(frozen=True)
class _Catalog:
    region: str
    #: AZ name -> AZ ID.
    zone_ids: dict[str, str]
    specs: list[instance_types.InstanceTypeSpec]
    offerings: list[instance_types.Offering]


def _choose_regions(clients: AwsClients, config: OracleSyncOptions) -> tuple[list[str], list[str]]:
    """(regions to sync, regions asked for but not enabled for the account)."""
    try:
        listed = regions.describe_regions(clients.ec2(clients.home()))
    except Exception as error:
        if not config.regions:
            raise SyncError(
                f"cannot list the AWS regions ({describe_error(error)}); check the AWS "
                "credentials, name the regions with --regions, or use --source sample"
            ) from None
        # The regions were named: try each, and let each fail on its own if it must.
        return sorted(set(config.regions)), []
    known = {info.region: info for info in listed}
    if not config.regions:
        return [info.region for info in listed if info.enabled], []
    unknown = sorted(set(config.regions) - known.keys())
    if unknown:
        raise InputError(
            f"unknown region {', '.join(map(repr, unknown))}: AWS lists "
            f"{', '.join(sorted(known))}; fix --regions or [oracle] regions"
        )
    wanted = sorted(set(config.regions))
    return (
        [region for region in wanted if known[region].enabled],
        [region for region in wanted if not known[region].enabled],
    )


def _kind_dict(result: KindResult) -> dict[str, Any]:
    return {
        "kind": result.kind,
        "status": result.status,
        "rows": result.rows,
        "duration_s": round(result.duration_s, 3),
        "error": result.error,
    }


def _no_progress(region: str, kind: str, done: int, total: int) -> None:
    return None
