"""Candidate pools: the oracle's facts turned into priced, capped, filtered planning options.

Pure functions over :class:`PlanningData` (what :mod:`scheduler.planning.load` reads from the
oracle, or what a test builds by hand).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from oracle.capacity import UnavailablePool
from oracle.goodput import GoodputFact
from oracle.quotas import VcpuQuota
from oracle.risk import (
    BAND_MONTHLY_RATE,
    HOURS_PER_MONTH,
    UNKNOWN_BAND_INDEX,
    Evidence,
    Observation,
    advisor_prior,
    posterior_availability,
    posterior_hazard_per_hour,
    summarise,
)
from oracle.stats import OnDemandOffer, PoolStats
from scheduler.config import PlannerConfig
from scheduler.planning.mix import WorkloadMix
from scheduler.planning.model import PoolKey

# Spot Instance Advisor bands are the share of instances interrupted over the trailing month;
# the planner takes each band's midpoint (the open ">20%" band: 25%) as a monthly rate, and a pool
# with no band as the worst band (flagged). One set of figures: oracle.risk's, the prior there.
__all__ = ["BAND_MONTHLY_RATE", "HOURS_PER_MONTH", "UNKNOWN_BAND_INDEX"]


@dataclass(frozen=True)
class InstanceSpec:
    instance_type: str
    vcpus: int
    accelerator_name: str
    accelerator_count: int
    accelerator_memory_mib_each: int


@dataclass(frozen=True)
class PlanningData:
    """Every fact one plan stands on, as known at ``as_of``."""

    as_of: datetime
    model: str
    pool_stats: Sequence[PoolStats]
    on_demand: Sequence[OnDemandOffer]
    goodput: Mapping[str, GoodputFact]
    instance_specs: Mapping[str, InstanceSpec]
    quotas: Mapping[tuple[str, str], VcpuQuota] = field(default_factory=dict)
    unavailable: Sequence[UnavailablePool] = ()
    #: What has been seen of the pools' risk up to ``as_of`` (interruptions, capacity errors,
    #: launches): the evidence :mod:`oracle.risk` updates each pool's Advisor prior with.
    observations: Sequence[Observation] = ()
    #: The same evidence already summed per pool (:class:`oracle.risk.Tally`), by a caller that
    #: keeps running sums; when given, ``observations`` is not read.
    evidence: Mapping[tuple[str, str, str, str], Evidence] | None = None
    #: The request mix to plan for (``goodput`` then holds each type's best bucket's fact).
    mix: WorkloadMix | None = None


@dataclass(slots=True)
class Candidate:
    """One pool the planner may use, priced and capped. Treated as immutable, but not frozen,
    for the speed of its ``__init__`` (as :class:`oracle.stats.PoolStats`)."""

    pool: PoolKey
    availability_zone: str | None
    availability_zone_id: str | None
    goodput: GoodputFact
    spec: InstanceSpec
    #: The price estimate (spot: by the configured estimator, never above on-demand).
    price_usd_per_hour: float
    on_demand_price_usd_per_hour: float | None
    #: Expected interruption cost per instance-hour (0 for on-demand).
    interruption_usd_per_hour: float
    hazard_per_hour: float
    band_label: str | None
    band_known: bool
    placement_score: int | None
    #: Largest obtainable count (inf: only quotas bound it).
    cap: float
    #: "placement-score", "default" (no score: flagged) or "" (on-demand).
    cap_source: str
    price_source: str
    price_observed_at: datetime | None
    stats: PoolStats | None = None
    offer: OnDemandOffer | None = None
    #: Probability that a launch into the pool succeeds (:mod:`oracle.risk`).
    launch_availability: float = 1.0
    #: "prior" (the Advisor band alone) or "observed (sources)".
    risk_source: str = "prior"

    @property
    def expected_cost_usd_per_hour(self) -> float:
        return self.price_usd_per_hour + self.interruption_usd_per_hour

    @property
    def tokens_per_second(self) -> float:
        return self.goodput.goodput_tokens_per_second


@dataclass
class CandidateSet:
    candidates: list[Candidate]
    #: Why pools were left out, counted: {"no goodput figure for the model": 120, ...}.
    excluded: dict[str, int] = field(default_factory=dict)

    def exclude(self, reason: str) -> None:
        self.excluded[reason] = self.excluded.get(reason, 0) + 1


def build_candidates(
    data: PlanningData,
    config: PlannerConfig,
    *,
    exclude_pools: Collection[PoolKey] = (),
    priced: dict[tuple[int, Evidence | None], Candidate | str] | None = None,
) -> CandidateSet:
    """Every pool the planner may use, priced and capped, after the filters.

    ``priced``: spot pools already priced from these same ``data.pool_stats`` objects and
    ``config`` (keyed by the stats object's identity and the pool's evidence), filled as they
    are priced: a caller that builds many sets from one snapshot of the market, with evidence
    that changes in a few pools at a time (the backtest's policies), prices each pool once.
    """
    result = CandidateSet([])
    excluded = set(exclude_pools)
    unavailable = {(u.region, u.zone, u.instance_type, u.market) for u in data.unavailable}
    on_demand_price = {(o.region, o.instance_type): o for o in data.on_demand}
    evidence = data.evidence
    if evidence is None:
        evidence = summarise(data.observations, as_of=data.as_of) if data.observations else {}
    if config.markets != "on-demand":
        for stats in data.pool_stats:
            key = PoolKey(stats.region, stats.zone, stats.instance_type, "spot")
            reason = _filtered(key, data, config, excluded)
            if reason is None and unavailable and _is_unavailable(key, stats, unavailable):
                reason = "marked unavailable after a capacity error"
            if reason is not None:
                result.exclude(reason)
                continue
            seen = _evidence_of(key, stats, evidence)
            if priced is None:
                candidate = _spot_candidate(key, stats, data, config, on_demand_price, seen)
            else:
                found = priced.get((id(stats), seen))
                if found is None:
                    found = _spot_candidate(key, stats, data, config, on_demand_price, seen)
                    priced[(id(stats), seen)] = found
                candidate = found
            if isinstance(candidate, str):
                result.exclude(candidate)
            else:
                result.candidates.append(candidate)
    if config.markets != "spot":
        for offer in data.on_demand:
            key = PoolKey(offer.region, "", offer.instance_type, "on-demand")
            reason = _filtered(key, data, config, excluded)
            if reason is None and _od_unavailable(offer, unavailable):
                reason = "marked unavailable after a capacity error"
            if reason is not None:
                result.exclude(reason)
                continue
            result.candidates.append(_on_demand_candidate(key, offer, data))
    result.candidates.sort(key=lambda c: c.pool)
    return result


def spot_price_estimate(stats: PoolStats, estimator: str) -> float | None:
    """The spot price the plan assumes, before the on-demand ceiling."""
    current = stats.current_price_usd_per_hour
    mean_7d = stats.mean_price_usd_per_hour_7d
    if estimator == "current":
        return current
    if estimator == "mean-7d":
        return mean_7d if mean_7d is not None else current
    if estimator == "p95-30d":
        # The oracle's statistics hold the 95th percentile over 90 days, not 30; the planner
        # uses it as the (more cautious) stand-in.
        p95 = stats.p95_price_usd_per_hour_90d
        return p95 if p95 is not None else current
    known = [price for price in (current, mean_7d) if price is not None]
    return max(known) if known else None


def placement_cap(scores: Mapping[int, int], min_score: int) -> int:
    """The largest target capacity whose placement score meets ``min_score`` (0 if none)."""
    eligible = [capacity for capacity, score in scores.items() if score >= min_score]
    return max(eligible) if eligible else 0


def hazard_per_hour(band_index: int | None) -> float:
    """The Advisor band's hazard: the prior of :func:`oracle.risk.advisor_prior`."""
    return advisor_prior(band_index).hazard_per_hour


# --- helpers ------------------------------------------------------------------------------


def _filtered(
    key: PoolKey, data: PlanningData, config: PlannerConfig, excluded: set[PoolKey]
) -> str | None:
    if key in excluded:
        return "excluded by the caller"
    if config.regions_allow and key.region not in config.regions_allow:
        return "region not in planner.regions_allow"
    if key.region in config.regions_deny:
        return "region in planner.regions_deny"
    if config.instance_types_allow and key.instance_type not in config.instance_types_allow:
        return "instance type not in planner.instance_types_allow"
    if key.instance_type in config.instance_types_deny:
        return "instance type in planner.instance_types_deny"
    if key.instance_type not in data.goodput:
        return "no goodput figure for the model (or the model does not fit)"
    if key.instance_type not in data.instance_specs:
        return "instance type missing from the instance_types table (vCPUs unknown)"
    return None


def _is_unavailable(
    key: PoolKey, stats: PoolStats, unavailable: set[tuple[str, str, str, str]]
) -> bool:
    names = {key.zone, stats.availability_zone, stats.availability_zone_id} - {None}
    return any((key.region, zone, key.instance_type, "spot") in unavailable for zone in names)


def _od_unavailable(offer: OnDemandOffer, unavailable: set[tuple[str, str, str, str]]) -> bool:
    """A region-level on-demand pool is out when the whole region, or every zone, is marked."""
    marked = {
        zone
        for region, zone, itype, market in unavailable
        if region == offer.region and itype == offer.instance_type and market == "on-demand"
    }
    if "" in marked or offer.region in marked:
        return True
    return bool(offer.zones) and set(offer.zones) <= marked


def _evidence_of(
    key: PoolKey, stats: PoolStats, evidence: Mapping[tuple[str, str, str, str], Evidence]
) -> Evidence | None:
    """The pool's observations, whichever of AZ ID or AZ name they were recorded under."""
    if not evidence:
        return None
    for zone in (key.zone, stats.availability_zone_id, stats.availability_zone):
        if zone is not None:
            seen = evidence.get((key.region, zone, key.instance_type, "spot"))
            if seen is not None:
                return seen
    return None


def _spot_candidate(
    key: PoolKey,
    stats: PoolStats,
    data: PlanningData,
    config: PlannerConfig,
    on_demand_price: Mapping[tuple[str, str], OnDemandOffer],
    seen: Evidence | None = None,
) -> Candidate | str:
    estimate = spot_price_estimate(stats, config.spot_price_estimator)
    if estimate is None:
        return "no spot price"
    offer = on_demand_price.get((key.region, key.instance_type))
    on_demand = stats.on_demand_price_usd_per_hour
    if on_demand is None and offer is not None:
        on_demand = offer.price_usd_per_hour
    if on_demand is not None:
        estimate = min(estimate, on_demand)
    if stats.placement_scores:
        cap = placement_cap(stats.placement_scores, config.min_placement_score)
        if cap == 0:
            return (
                f"placement score below planner.min_placement_score ({config.min_placement_score})"
            )
        cap_source = "placement-score"
        score: int | None = stats.placement_scores[cap]
    else:
        cap, cap_source, score = config.default_spot_cap, "default", None
    # The Advisor band is the prior; what was seen of the pool (oracle.risk) the evidence.
    prior = advisor_prior(stats.interruption_band_index)
    hazard, availability = prior.hazard_per_hour, prior.availability
    if seen is not None:
        hazard = posterior_hazard_per_hour(
            prior, losses=seen.losses, exposure_hours=seen.exposure_hours
        )
        availability = posterior_availability(
            prior, successes=seen.launches_ok, failures=seen.launch_failures
        )
    # The restart cost of each loss: while a replacement starts, the fleet pays for it without
    # it serving. It lands on spot as often as a launch into the pool succeeds (its launch
    # availability standing in for the pools a replan tries) and otherwise on demand (the
    # executor's cover after failed replans). Covering the lost throughput meanwhile is the
    # hedge's job, and the SLO deficit the hedge leaves is priced per plan
    # (scheduler.planning.attainment).
    replacement_price = estimate
    if on_demand is not None:
        replacement_price = availability * estimate + (1.0 - availability) * on_demand
    interruption = hazard * config.replacement_time_s / 3600.0 * replacement_price
    return Candidate(
        pool=key,
        availability_zone=stats.availability_zone,
        availability_zone_id=stats.availability_zone_id,
        goodput=data.goodput[key.instance_type],
        spec=data.instance_specs[key.instance_type],
        price_usd_per_hour=estimate,
        on_demand_price_usd_per_hour=on_demand,
        interruption_usd_per_hour=interruption,
        hazard_per_hour=hazard,
        band_label=stats.interruption_band_label,
        band_known=stats.interruption_band_index is not None,
        placement_score=score,
        cap=float(cap),
        cap_source=cap_source,
        price_source=stats.price_source or "",
        price_observed_at=stats.price_observed_at,
        stats=stats,
        offer=offer,
        launch_availability=availability,
        risk_source="prior" if seen is None else "observed (" + ", ".join(seen.sources) + ")",
    )


def _on_demand_candidate(key: PoolKey, offer: OnDemandOffer, data: PlanningData) -> Candidate:
    return Candidate(
        pool=key,
        availability_zone=None,
        availability_zone_id=None,
        goodput=data.goodput[key.instance_type],
        spec=data.instance_specs[key.instance_type],
        price_usd_per_hour=offer.price_usd_per_hour,
        on_demand_price_usd_per_hour=offer.price_usd_per_hour,
        interruption_usd_per_hour=0.0,
        hazard_per_hour=0.0,
        band_label=None,
        band_known=True,
        placement_score=None,
        cap=math.inf,
        cap_source="",
        price_source=offer.source,
        price_observed_at=offer.observed_at,
        offer=offer,
    )
