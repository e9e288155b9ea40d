"""Observations in the store and the risk read from them, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import InterruptionFrequencyModel
from oracle.observations import (
    load_observations,
    pool_risk,
    record_held,
    record_launch,
    record_notice,
    record_observation,
)
from oracle.risk import advisor_prior


@dataclass(frozen=True)
class Pool:
    region: str
    zone: str
    instance_type: str
    market: str


T0 = datetime(2026, 11, 1, tzinfo=UTC)
POOL = Pool("us-east-1", "use1-az1", "p3.2xlarge", "spot")
KEY = (POOL.region, POOL.zone, POOL.instance_type, POOL.market)
QUIET = ("us-east-1", "use1-az2", "p3.2xlarge", "spot")


def _band(engine: Engine, band_index: int, observed_at: datetime) -> None:
    with transaction(engine) as session:
        session.add(
            InterruptionFrequencyModel(
                region="us-east-1",
                instance_type="p3.2xlarge",
                band_index=band_index,
                band_label="x",
                band_max_pct=15.0,
                savings_pct=70.0,
                source="file",
                observed_at=observed_at,
            )
        )


def test_pool_risk_reads_evidence_up_to_as_of_with_the_band_as_prior(engine: Engine) -> None:
    _band(engine, 2, T0 - timedelta(days=1))
    _band(engine, 4, T0 + timedelta(days=30))  # not yet known at the moments read below
    with transaction(engine) as session:
        record_launch(session, POOL, ok=True, observed_at=T0)
        record_notice(session, POOL, interruption=True, observed_at=T0 + timedelta(hours=1))
        record_notice(session, POOL, interruption=False, observed_at=T0 + timedelta(hours=1))
        record_observation(
            session,
            region=POOL.region,
            zone=POOL.zone,
            instance_type=POOL.instance_type,
            market="spot",
            kind="capacity-error",
            observed_at=T0 + timedelta(hours=2),
            count=5,
            at_risk_s=7200.0,
            source="file",
        )
    record_launch(engine, POOL, ok=False, observed_at=T0 + timedelta(hours=30))

    with transaction(engine) as session:
        risk = pool_risk(session, as_of=T0 + timedelta(hours=3), pools=[QUIET])
        later = pool_risk(session, as_of=T0 + timedelta(days=2))
        seen = load_observations(session, as_of=T0 + timedelta(hours=1))

    assert set(risk) == {KEY, QUIET}
    prior = advisor_prior(2)
    assert risk[QUIET].hazard_per_hour == pytest.approx(prior.hazard_per_hour)
    assert risk[QUIET].source == "prior"
    evidence = risk[KEY].evidence
    assert (evidence.losses, evidence.rebalances) == (1, 1)
    assert (evidence.launches_ok, evidence.launch_failures) == (1, 5)
    assert evidence.exposure_hours == pytest.approx(2.0)
    assert evidence.observations == 8
    assert evidence.last_observed_at == T0 + timedelta(hours=2)
    assert risk[KEY].source == "observed (aws, file)"
    assert risk[KEY].hazard_per_hour == pytest.approx((prior.hazard_per_hour * 24 + 1) / (24 + 2))
    assert risk[KEY].availability == pytest.approx((prior.availability * 20 + 1) / 26)
    assert later[KEY].evidence.launch_failures == 6
    assert later[KEY].availability < risk[KEY].availability
    assert [o.kind for o in seen] == ["launch", "interruption", "rebalance"]
    assert all(o.observed_at.tzinfo is not None for o in seen)


def test_unknown_kind_is_refused(engine: Engine) -> None:
    with transaction(engine) as session, pytest.raises(ValueError, match="kind must be one of"):
        record_observation(
            session,
            region="us-east-1",
            zone="use1-az1",
            instance_type="p3.2xlarge",
            market="spot",
            kind="outage",
            observed_at=T0,
        )


def test_held_instances_are_the_hazards_exposure(engine: Engine) -> None:
    record_held(engine, POOL, since=None, until=T0)  # launch time unknown: nothing
    record_held(engine, POOL, since=T0, until=T0)  # never held: nothing
    record_held(engine, POOL, since=T0, until=T0 + timedelta(hours=10), source_detail="replica 1")
    record_held(engine, POOL, since=T0, until=T0 + timedelta(hours=10), source_detail="replica 2")
    record_notice(engine, POOL, interruption=True, observed_at=T0 + timedelta(hours=10))
    with transaction(engine) as session:
        risk = pool_risk(session, as_of=T0 + timedelta(hours=11))[KEY]
    assert risk.evidence.exposure_hours == pytest.approx(20.0)
    assert risk.evidence.losses == 1
    prior = advisor_prior(None)
    assert risk.hazard_per_hour == pytest.approx((prior.hazard_per_hour * 24 + 1) / (24 + 20))
