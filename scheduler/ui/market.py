"""The market explorer's facts for one region and instance type: the spot price history per
zone against the on-demand price, placement scores and Advisor bands over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import (
    InterruptionFrequencyModel,
    PlacementScoreModel,
    SpotPriceModel,
)
from oracle.observations import load_observations
from oracle.risk import Observation, advisor_prior, estimate_risk
from oracle.stats import on_demand_offers


def market_choices(engine: Engine) -> dict[str, list[str]]:
    """Regions and instance types that have a spot price, sorted (for the explorer's menus)."""
    with transaction(engine) as session:
        regions = session.scalars(sa.select(SpotPriceModel.region).distinct()).all()
        types = session.scalars(sa.select(SpotPriceModel.instance_type).distinct()).all()
    return {"regions": sorted(regions), "instance_types": sorted(types)}


def market_history(
    engine: Engine,
    *,
    region: str,
    instance_type: str,
    zone: str | None = None,
    days: int = 90,
    product_description: str = "Linux/UNIX",
    operating_system: str = "Linux",
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Everything the explorer draws for (region, instance type[, zone]) over ``days`` to
    ``as_of`` (default now). Each series keeps its source and newest observation time."""
    as_of = as_of or datetime.now(UTC)
    start = as_of - timedelta(days=days)
    with transaction(engine) as session:
        spot = _spot_series(session, region, instance_type, zone, start, as_of, product_description)
        offers = on_demand_offers(
            session,
            as_of=as_of,
            regions=[region],
            instance_types=[instance_type],
            operating_system=operating_system,
        )
        placement = _placement_series(session, region, instance_type, zone, start, as_of)
        advisor = _advisor_series(session, region, instance_type, operating_system, start, as_of)
        observations = load_observations(
            session, as_of=as_of, regions=[region], instance_types=[instance_type]
        )
    offer = offers[0] if offers else None
    hazard = _hazard_series(
        [s["zone"] for s in spot], region, instance_type, advisor, observations, start, as_of
    )
    sources = {s["source"] for s in spot} | {s["source"] for s in placement}
    sources |= {point["source"] for point in advisor}
    if offer is not None:
        sources.add(offer.source)
    return {
        "region": region,
        "instance_type": instance_type,
        "zone": zone,
        "as_of": as_of,
        "days": days,
        "spot": spot,
        "on_demand": None
        if offer is None
        else {
            "price_usd_per_hour": offer.price_usd_per_hour,
            "source": offer.source,
            "observed_at": offer.observed_at,
        },
        "placement_scores": placement,
        "advisor": advisor,
        "hazard": hazard,
        "sample": "sample" in sources,
    }


def _spot_series(
    session: Any,
    region: str,
    instance_type: str,
    zone: str | None,
    start: datetime,
    as_of: datetime,
    product_description: str,
) -> list[dict[str, Any]]:
    """Per zone: the step function of the price over the window, opened by the price in force
    at its start (so the line begins at the left edge)."""
    table = SpotPriceModel
    where = [
        table.region == region,
        table.instance_type == instance_type,
        table.product_description == product_description,
        table.timestamp <= as_of,
    ]
    if zone:
        where.append(table.zone == zone)
    opening = dict(
        session.execute(
            sa.select(table.zone, sa.func.max(table.timestamp))
            .where(*where, table.timestamp <= start)
            .group_by(table.zone)
        ).all()
    )
    opened = list(opening.values()) or [as_of]
    rows = session.execute(
        sa.select(
            table.zone,
            table.availability_zone,
            table.timestamp,
            table.price_usd_per_hour,
            table.source,
            table.observed_at,
        )
        .where(*where)
        .where(sa.or_(table.timestamp > start, table.timestamp.in_(opened)))
        .order_by(table.zone, table.timestamp)
    ).all()
    series: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.timestamp <= start and opening.get(row.zone) != row.timestamp:
            continue
        entry = series.setdefault(
            row.zone,
            {
                "zone": row.zone,
                "availability_zone": row.availability_zone,
                "times": [],
                "prices_usd_per_hour": [],
                "source": row.source,
                "newest_observed_at": row.observed_at,
            },
        )
        entry["times"].append(max(row.timestamp, start))
        entry["prices_usd_per_hour"].append(row.price_usd_per_hour)
        entry["newest_observed_at"] = max(entry["newest_observed_at"], row.observed_at)
        if row.source == "sample":
            entry["source"] = "sample"
    for entry in series.values():  # carry the last price to the right edge
        entry["times"].append(as_of)
        entry["prices_usd_per_hour"].append(entry["prices_usd_per_hour"][-1])
    return [series[name] for name in sorted(series)]


def _placement_series(
    session: Any,
    region: str,
    instance_type: str,
    zone: str | None,
    start: datetime,
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Scores of queries that asked about the type, per scope (AZ ID or ``region``) and target
    capacity. A query that named several types answers for the set: the score is the set's."""
    table = PlacementScoreModel
    rows = session.execute(
        sa.select(table)
        .where(table.region == region, table.observed_at > start, table.observed_at <= as_of)
        .where(table.instance_types.contains(instance_type))
        .order_by(table.scope, table.target_capacity, table.observed_at)
    ).scalars()
    series: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        if instance_type not in row.instance_types.split(","):
            continue
        if zone and row.scope not in (zone, "region"):
            continue
        entry = series.setdefault(
            (row.scope, row.target_capacity),
            {
                "scope": row.scope,
                "target_capacity": row.target_capacity,
                "times": [],
                "scores": [],
                "source": row.source,
            },
        )
        entry["times"].append(row.observed_at)
        entry["scores"].append(row.score)
    if not zone and series:
        # All zones at every target capacity is a crowd of lines: without a chosen zone, keep
        # the largest target capacity asked about (the one a fleet needs).
        largest = max(capacity for _, capacity in series)
        series = {key: value for key, value in series.items() if key[1] == largest}
    return [series[key] for key in sorted(series)]


#: Points of the learned hazard's curve over the window.
HAZARD_POINTS = 45


def _hazard_series(
    zones: list[str],
    region: str,
    instance_type: str,
    advisor: list[dict[str, Any]],
    observations: list[Observation],
    start: datetime,
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Per zone, the hazard the oracle learned (:mod:`oracle.risk`) as known at each of
    :data:`HAZARD_POINTS` moments of the window: the Advisor band then as the prior, updated by
    the losses and time held observed up to that moment (no look-ahead)."""
    moments = [start + (as_of - start) * i / (HAZARD_POINTS - 1) for i in range(HAZARD_POINTS)]
    series: dict[str, dict[str, Any]] = {
        zone: {"zone": zone, "times": [], "hazard_per_hour": [], "launch_availability": []}
        for zone in zones
    }
    for moment in moments:
        band = None
        for point in advisor:
            if point["observed_at"] <= moment:
                band = point["band_index"]
        seen = [o for o in observations if o.observed_at <= moment]
        priors = {
            (region, zone, instance_type, "spot"): advisor_prior(band, market="spot")
            for zone in zones
        }
        risks = estimate_risk(
            seen,
            priors=priors,
            as_of=moment,
            pools=[(region, zone, instance_type, "spot") for zone in zones],
        )
        for zone in zones:
            risk = risks[(region, zone, instance_type, "spot")]
            series[zone]["times"].append(moment)
            series[zone]["hazard_per_hour"].append(risk.hazard_per_hour)
            series[zone]["launch_availability"].append(risk.availability)
    for zone in zones:
        risk = risks[(region, zone, instance_type, "spot")]
        series[zone]["source"] = risk.source
        series[zone]["prior_source"] = risk.prior.source
        series[zone]["observations"] = risk.evidence.observations
    return [series[zone] for zone in zones]


def _advisor_series(
    session: Any,
    region: str,
    instance_type: str,
    operating_system: str,
    start: datetime,
    as_of: datetime,
) -> list[dict[str, Any]]:
    table = InterruptionFrequencyModel
    rows = session.scalars(
        sa.select(table)
        .where(
            table.region == region,
            table.instance_type == instance_type,
            table.operating_system == operating_system,
            table.observed_at <= as_of,
        )
        .order_by(table.observed_at)
    ).all()
    # The band in force at the window's start, then every later observation.
    kept = [row for row in rows if row.observed_at > start]
    earlier = [row for row in rows if row.observed_at <= start]
    if earlier:
        kept.insert(0, earlier[-1])
    return [
        {
            "observed_at": row.observed_at,
            "band_index": row.band_index,
            "band_label": row.band_label,
            "band_max_pct": row.band_max_pct,
            "savings_pct": row.savings_pct,
            "source": row.source,
        }
        for row in kept
    ]
