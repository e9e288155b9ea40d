"""Tiny hand-made oracle answers for planner tests (PoolStats, offers, goodput, specs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oracle.goodput import GoodputFact
from oracle.stats import OnDemandOffer, PoolStats
from scheduler.planning.candidates import InstanceSpec, PlanningData

AS_OF = datetime(2026, 11, 28, 12, tzinfo=UTC)
MODEL = "meta-llama/Llama-3.1-8B-Instruct"

SPECS = {
    "g5.xlarge": InstanceSpec("g5.xlarge", 4, "A10G", 1, 24576),
    "g6e.xlarge": InstanceSpec("g6e.xlarge", 4, "L40S", 1, 46068),
    "p4d.24xlarge": InstanceSpec("p4d.24xlarge", 96, "A100", 8, 40960),
}
ON_DEMAND_USD = {"g5.xlarge": 1.006, "g6e.xlarge": 1.861, "p4d.24xlarge": 21.96}
GOODPUT = {"g5.xlarge": 400.0, "g6e.xlarge": 900.0, "p4d.24xlarge": 6000.0}


def spot(
    zone: str,
    instance_type: str,
    price: float,
    *,
    region: str = "us-east-1",
    mean_7d: float | None = None,
    scores: dict[int, int] | None = None,
    band: int | None = 0,
    source: str = "aws",
    observed_at: datetime = AS_OF - timedelta(hours=1),
) -> PoolStats:
    on_demand = ON_DEMAND_USD[instance_type]
    labels = ["<5%", "5-10%", "10-15%", "15-20%", ">20%"]
    return PoolStats(
        region=region,
        zone=zone,
        availability_zone=zone.replace("use1-az", "us-east-1") if "az" in zone else zone,
        availability_zone_id=zone,
        instance_type=instance_type,
        as_of=AS_OF,
        current_price_usd_per_hour=price,
        mean_price_usd_per_hour_7d=price if mean_7d is None else mean_7d,
        mean_price_usd_per_hour_30d=price,
        mean_price_usd_per_hour_90d=price,
        p95_price_usd_per_hour_90d=price * 1.2,
        max_price_usd_per_hour_90d=price * 1.5,
        volatility_90d=0.1,
        share_above_80pct_on_demand_90d=0.0,
        changes_90d=10,
        price_source=source,
        price_observed_at=observed_at,
        on_demand_price_usd_per_hour=on_demand,
        on_demand_source=source,
        on_demand_observed_at=observed_at,
        placement_scores={1: 9, 4: 8, 16: 6} if scores is None else scores,
        placement_source=source if scores != {} else None,
        placement_observed_at=observed_at if scores != {} else None,
        interruption_band_index=band,
        interruption_band_label=None if band is None else labels[band],
        savings_pct=60.0,
        advisor_source=source if band is not None else None,
        advisor_observed_at=observed_at if band is not None else None,
    )


def offer(instance_type: str, *, region: str = "us-east-1", source: str = "aws") -> OnDemandOffer:
    return OnDemandOffer(
        region=region,
        instance_type=instance_type,
        price_usd_per_hour=ON_DEMAND_USD[instance_type],
        source=source,
        observed_at=AS_OF - timedelta(days=3),
        zones=("use1-az1", "use1-az2"),
    )


def goodput(instance_type: str, source: str = "measured") -> GoodputFact:
    return GoodputFact(
        model=MODEL,
        instance_type=instance_type,
        goodput_tokens_per_second=GOODPUT[instance_type],
        source=source,
        source_detail="",
        observed_at=AS_OF - timedelta(days=1),
        gpu_count=1,
        tensor_parallel=1,
        workload_id="chat-mix-v1",
        run_id=1,
    )


def data(
    pools: list[PoolStats],
    offers: list[OnDemandOffer] | None = None,
    *,
    goodput_source: str = "measured",
    **kwargs: object,
) -> PlanningData:
    offers = offers if offers is not None else [offer(t) for t in ("g5.xlarge", "g6e.xlarge")]
    types = {p.instance_type for p in pools} | {o.instance_type for o in offers}
    return PlanningData(
        as_of=AS_OF,
        model=MODEL,
        pool_stats=pools,
        on_demand=offers,
        goodput={t: goodput(t, goodput_source) for t in types},
        instance_specs=SPECS,
        **kwargs,  # type: ignore[arg-type]
    )


def two_zone_market() -> PlanningData:
    """g5 and g6e spot in two AZs of us-east-1, plus on-demand for both."""
    return data(
        [
            spot("use1-az1", "g5.xlarge", 0.40),
            spot("use1-az2", "g5.xlarge", 0.45, band=2),
            spot("use1-az1", "g6e.xlarge", 0.95),
            spot("use1-az2", "g6e.xlarge", 0.80),
        ]
    )
