"""vCPU quotas as of a time, and pools marked unavailable until their mark expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from oracle.capacity import backoff_ttl_s, mark_unavailable, unavailable_pools
from oracle.db import transaction
from oracle.models import ServiceQuotaModel
from oracle.quotas import QUOTA_CODES, instance_class, latest_quotas

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _quota(region: str, code: str, value: float, at: datetime) -> ServiceQuotaModel:
    return ServiceQuotaModel(
        region=region,
        quota_code=code,
        quota_name="q",
        value_vcpus=value,
        source="aws",
        observed_at=at,
    )


def test_latest_quota_per_region_and_code_as_of(engine: Engine) -> None:
    with transaction(engine) as session:
        session.add_all(
            [
                _quota("us-east-1", "L-3819A6DF", 64, T0),
                _quota("us-east-1", "L-3819A6DF", 256, T0 + timedelta(days=2)),
                _quota("us-east-1", "L-417A185B", 0, T0),
                _quota("eu-west-1", "L-3819A6DF", 32, T0 + timedelta(days=1)),
                _quota("us-east-1", "L-1216C47A", 999, T0),  # Inf: not a GPU quota we read
            ]
        )
    with transaction(engine) as session:
        now = latest_quotas(session)
        then = latest_quotas(session, as_of=T0 + timedelta(hours=1))
        east = latest_quotas(session, regions=["us-east-1"])
    assert now[("us-east-1", "L-3819A6DF")].value_vcpus == 256
    assert now[("eu-west-1", "L-3819A6DF")].value_vcpus == 32
    assert ("us-east-1", "L-1216C47A") not in now
    assert then[("us-east-1", "L-3819A6DF")].value_vcpus == 64
    assert ("eu-west-1", "L-3819A6DF") not in then
    assert set(east) == {("us-east-1", "L-3819A6DF"), ("us-east-1", "L-417A185B")}


@pytest.mark.parametrize(
    ("instance_type", "expected"),
    [
        ("g5.xlarge", "G/VT"),
        ("g6e.12xlarge", "G/VT"),
        ("gr6.4xlarge", "G/VT"),
        ("vt1.3xlarge", "G/VT"),
        ("p4d.24xlarge", "P"),
        ("p5.48xlarge", "P"),
        ("inf2.xlarge", None),
        ("trn1.2xlarge", None),
    ],
)
def test_instance_class(instance_type: str, expected: str | None) -> None:
    assert instance_class(instance_type) == expected


def test_quota_codes_cover_both_markets_and_classes() -> None:
    assert QUOTA_CODES[("spot", "G/VT")] == "L-3819A6DF"
    assert QUOTA_CODES[("on-demand", "P")] == "L-417A185B"


def test_marks_expire(engine: Engine) -> None:
    with transaction(engine) as session:
        mark_unavailable(
            session,
            region="us-east-1",
            zone="use1-az4",
            instance_type="g5.xlarge",
            market="spot",
            ttl_s=300,
            now=T0,
        )
        # A second, later mark of the same pool extends it, for twice the TTL (backoff).
        mark_unavailable(
            session,
            region="us-east-1",
            zone="use1-az4",
            instance_type="g5.xlarge",
            market="spot",
            ttl_s=300,
            now=T0 + timedelta(seconds=200),
        )
    with transaction(engine) as session:
        before = unavailable_pools(session, as_of=T0 - timedelta(seconds=1))
        during = unavailable_pools(session, as_of=T0 + timedelta(seconds=400))
        still = unavailable_pools(session, as_of=T0 + timedelta(seconds=700))
        after = unavailable_pools(session, as_of=T0 + timedelta(seconds=801))
    assert before == []
    assert [(p.zone, p.instance_type, p.market) for p in during] == [
        ("use1-az4", "g5.xlarge", "spot")
    ]
    assert during[0].expires_at == T0 + timedelta(seconds=200 + 600)
    assert len(still) == 1
    assert after == []


def test_marks_back_off_up_to_a_cap(engine: Engine) -> None:
    """Each earlier mark of the pool within a day doubles the TTL, up to 16x; another pool's
    marks and marks older than a day do not count."""
    expiries = []
    with transaction(engine) as session:
        mark_unavailable(
            session, region="us-east-1", zone="use1-az1", instance_type="g5.xlarge",
            market="spot", ttl_s=100, now=T0 - timedelta(days=2),
        )  # fmt: skip
        for step in range(7):
            now = T0 + timedelta(hours=step)
            pool = mark_unavailable(
                session, region="us-east-1", zone="use1-az4", instance_type="g5.xlarge",
                market="spot", ttl_s=100, now=now,
            )  # fmt: skip
            expiries.append((pool.expires_at - now).total_seconds())
        other = mark_unavailable(
            session, region="us-east-1", zone="use1-az2", instance_type="g5.xlarge",
            market="spot", ttl_s=100, now=T0,
        )  # fmt: skip
    assert expiries == [100, 200, 400, 800, 1600, 1600, 1600]
    assert other.expires_at == T0 + timedelta(seconds=100)
    assert backoff_ttl_s(60.0, 0) == 60.0 and backoff_ttl_s(60.0, 10_000) == 60.0 * 16


def test_mark_refuses_an_unknown_market(engine: Engine) -> None:
    with transaction(engine) as session, pytest.raises(ValueError, match="market"):
        mark_unavailable(
            session, region="r", zone="z", instance_type="g5.xlarge", market="reserved", ttl_s=1
        )
