"""Observed pool risk in the store: write what the service sees, read it back for the estimator.

The service records a capacity error or a successful launch where the actuator launches, and an
interruption notice or rebalance signal where EC2 events are handled; ``scheduler oracle
import`` records availability traces. :func:`pool_risk` reads the rows seen up to ``as_of``
and hands them, with each pool's Advisor band as the prior, to :func:`oracle.risk.estimate_risk`
(the same kernel a backtest calls with what its policy has seen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.risk import (
    OBSERVATION_KINDS,
    Observation,
    PoolKeyTuple,
    PoolRisk,
    advisor_prior,
    estimate_risk,
)
from oracle.tables import availability_zones, interruption_frequencies, pool_observations

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class PoolLike(Protocol):
    """Anything naming a pool (the actuator's ``Pool``, the planner's ``PoolKey``)."""

    @property
    def region(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def instance_type(self) -> str: ...
    @property
    def market(self) -> str: ...


def record_launch(
    into: Session | Engine,
    pool: PoolLike,
    *,
    ok: bool,
    observed_at: datetime,
    source_detail: str = "",
) -> None:
    """A launch into ``pool`` succeeded (``ok``) or failed for capacity: one observation,
    written in the session's transaction or, given an engine, in a transaction of its own."""
    _record(into, pool, "launch" if ok else "capacity-error", observed_at, source_detail)


def record_notice(
    into: Session | Engine,
    pool: PoolLike,
    *,
    interruption: bool,
    observed_at: datetime,
    source_detail: str = "",
) -> None:
    """An EC2 spot interruption notice (``interruption``) or rebalance recommendation."""
    kind = "interruption" if interruption else "rebalance"
    _record(into, pool, kind, observed_at, source_detail)


def record_held(
    into: Session | Engine,
    pool: PoolLike,
    *,
    since: datetime | None,
    until: datetime,
    source_detail: str = "",
) -> None:
    """An instance held in ``pool`` from ``since`` (its launch) to ``until`` (its end): the
    hazard's exposure. Nothing is recorded when the launch time is unknown."""
    if since is None or until <= since:
        return
    if isinstance(into, Engine):
        with transaction(into) as session:
            record_held(session, pool, since=since, until=until, source_detail=source_detail)
        return
    record_observation(
        into,
        region=pool.region,
        zone=pool.zone,
        instance_type=pool.instance_type,
        market=pool.market,
        kind="held",
        observed_at=until,
        at_risk_s=(until - since).total_seconds(),
        source_detail=f"{source_detail} held since {since.isoformat()}".strip(),
    )


def record_observation(
    session: Session,
    *,
    region: str,
    zone: str,
    instance_type: str,
    market: str,
    kind: str,
    observed_at: datetime,
    count: int = 1,
    at_risk_s: float = 0.0,
    source: str = "aws",
    source_detail: str = "",
    availability_zone: str | None = None,
    availability_zone_id: str | None = None,
) -> None:
    """Add one observation row (in the caller's transaction)."""
    from oracle.models import PoolObservationModel  # the ORM, for writers only (oracle.tables)

    if kind not in OBSERVATION_KINDS:
        raise ValueError(f"kind must be one of {OBSERVATION_KINDS}, got {kind!r}")
    session.add(
        PoolObservationModel(
            region=region,
            zone=zone,
            availability_zone=availability_zone,
            availability_zone_id=availability_zone_id,
            instance_type=instance_type,
            market=market,
            kind=kind,
            count=count,
            at_risk_s=at_risk_s,
            source=source,
            source_detail=source_detail[-512:],
            observed_at=observed_at,
        )
    )


def load_observations(
    session: Session | sa.Connection,
    *,
    as_of: datetime | None = None,
    regions: Collection[str] | None = None,
    instance_types: Collection[str] | None = None,
) -> list[Observation]:
    """Every observation seen at or before ``as_of`` (default now), oldest first."""
    as_of = as_of or datetime.now(UTC)
    model = pool_observations.c
    query = sa.select(
        model.region,
        model.zone,
        model.instance_type,
        model.market,
        model.kind,
        model.observed_at,
        model.count,
        model.at_risk_s,
        model.source,
    ).where(model.observed_at <= as_of)
    if regions:
        query = query.where(model.region.in_(list(regions)))
    if instance_types:
        query = query.where(model.instance_type.in_(list(instance_types)))
    rows = session.execute(query.order_by(model.observed_at, model.id))
    # Key pools as the oracle does (AZ ID when known): a trace names its AZ by name only.
    names = sa.select(availability_zones.c.zone_name, availability_zones.c.zone_id)
    zone_ids = {name: zone_id for name, zone_id in session.execute(names)}
    return [
        dataclasses.replace(observation, zone=zone_ids.get(observation.zone, observation.zone))
        for observation in (Observation(*row) for row in rows)
    ]


def pool_risk(
    session: Session | sa.Connection,
    *,
    as_of: datetime | None = None,
    pools: Iterable[PoolKeyTuple] = (),
    regions: Collection[str] | None = None,
    instance_types: Collection[str] | None = None,
    half_life_hours: float | None = None,
) -> dict[PoolKeyTuple, PoolRisk]:
    """Hazard and availability of every observed pool and of ``pools``, as known at ``as_of``,
    with the Advisor band in force then as each pool's prior."""
    as_of = as_of or datetime.now(UTC)
    pools = list(pools)
    observations = load_observations(
        session, as_of=as_of, regions=regions, instance_types=instance_types
    )
    bands = advisor_bands(session, as_of=as_of)
    return estimate_risk(
        observations,
        priors=lambda pool: advisor_prior(bands.get((pool[0], pool[2])), market=pool[3]),
        as_of=as_of,
        pools=pools,
        half_life_hours=half_life_hours,
    )


def advisor_bands(
    session: Session | sa.Connection, *, as_of: datetime
) -> Mapping[tuple[str, str], int]:
    """The latest Linux Advisor band index at or before ``as_of`` per (region, instance type)."""
    model = interruption_frequencies.c
    rows = session.execute(
        sa.select(model.region, model.instance_type, model.band_index)
        .where(model.observed_at <= as_of, model.operating_system == "Linux")
        .order_by(model.observed_at)
    )
    return {(row.region, row.instance_type): row.band_index for row in rows}


def _record(
    into: Session | Engine, pool: PoolLike, kind: str, observed_at: datetime, detail: str
) -> None:
    if isinstance(into, Engine):
        with transaction(into) as session:
            _record(session, pool, kind, observed_at, detail)
        return
    record_observation(
        into,
        region=pool.region,
        zone=pool.zone,
        instance_type=pool.instance_type,
        market=pool.market,
        kind=kind,
        observed_at=observed_at,
        source_detail=detail,
    )
