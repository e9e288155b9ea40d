"""The price-sync, placement-score and Advisor-feed jobs against moto's server (and Stubber with
real response shapes for the calls moto lacks): rows land and every run is recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from botocore.stub import Stubber
from sqlalchemy.engine import Engine

from oracle.aws import instance_types
from oracle.aws.clients import AwsClients
from oracle.aws.placement import group_instance_types
from oracle.db import transaction
from oracle.models import (
    InterruptionFrequencyModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    SpotPriceModel,
)
from scheduler.actuator.executor import Actuator
from scheduler.config import OracleConfig, Settings
from scheduler.jobs import oracle_sync
from scheduler.jobs.context import JobContext, set_current
from scheduler.models import JobRunModel
from tests.oracle.aws import conftest as oracle_aws
from tests.oracle.aws.conftest import (
    placement_response,
    price_list_item,
    pricing_params,
    stub,
)

# The oracle's AWS fixtures, reused: the real Advisor feed on a local server, and Stubbers.
advisor_server = oracle_aws.advisor_server
stubs = oracle_aws.stubs

REGION = "us-east-1"
TYPES = ("g5.xlarge", "g5.2xlarge", "g6.xlarge")
LIST_USD = {"g5.xlarge": "1.006", "g5.2xlarge": "1.212", "g6.xlarge": "0.805"}


@pytest.fixture
def clients(moto_url: str, aws: Callable[..., Any]) -> AwsClients:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return AwsClients(session=session, endpoint_url=moto_url, max_attempts=3)


def _context(engine: Engine, clients: AwsClients, **oracle: Any) -> JobContext:
    settings = Settings(
        oracle=OracleConfig(
            regions=[REGION],
            instance_types=list(TYPES),
            history_days=2,
            placement_target_capacities=[4],
            **oracle,
        )
    )

    def no_actuator() -> Actuator:
        raise AssertionError("a sync job must not touch the fleet")

    context = JobContext(engine, settings, no_actuator, worker="test", aws=clients)
    set_current(context)
    return context


def _runs(engine: Engine) -> list[tuple[str, str, str]]:
    with transaction(engine) as session:
        rows = session.scalars(sa.select(JobRunModel).order_by(JobRunModel.id)).all()
        return [(r.job, r.status, r.worker) for r in rows]


def _count(engine: Engine, model: type[Any]) -> int:
    with transaction(engine) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def test_the_price_sync_job_stores_spot_and_on_demand_prices(
    engine: Engine, clients: AwsClients, stubs: list[Stubber]
) -> None:
    _context(engine, clients)
    pricing = stub(stubs, clients.pricing(REGION))
    for instance_type in sorted(TYPES):
        item = price_list_item(
            instance_type=instance_type, region=REGION, usd=LIST_USD[instance_type]
        )
        pricing.add_response(
            "get_products",
            {"FormatVersion": "aws_v1", "PriceList": [item]},
            pricing_params(REGION, instance_type),
        )

    run = oracle_sync.run_prices()

    assert (run.job, run.status, run.error) == ("price_sync", "ok", None)
    assert run.details["kinds"] == ["spot_prices", "on_demand_prices"]
    assert _count(engine, SpotPriceModel) > 0  # moto's generated price history
    with transaction(engine) as session:
        on_demand = dict(
            session.execute(
                sa.select(OnDemandPriceModel.instance_type, OnDemandPriceModel.price_usd_per_hour)
            ).all()
        )
    assert on_demand == {t: float(usd) for t, usd in LIST_USD.items()}
    assert _count(engine, PlacementScoreModel) == 0  # not this job's kind
    assert _runs(engine) == [("price_sync", "ok", "test")]


def test_the_placement_score_job_stores_scores(
    engine: Engine, clients: AwsClients, stubs: list[Stubber]
) -> None:
    context = _context(engine, clients)
    specs = instance_types.describe_accelerated_types(clients.ec2(REGION), instance_types=TYPES)
    groups = group_instance_types(
        specs, types_per_query=context.settings.oracle.placement_types_per_query
    )
    placement = stub(stubs, clients.spot_placement(REGION))
    for group in groups:
        for single_zone in (True, False):
            placement.add_response(
                "get_spot_placement_scores",
                placement_response(REGION, {"use1-az1": 9, "use1-az4": 2} if single_zone else None),
                {
                    "InstanceTypes": list(group),
                    "TargetCapacity": 4,
                    "TargetCapacityUnitType": "units",
                    "SingleAvailabilityZone": single_zone,
                    "RegionNames": [REGION],
                },
            )

    oracle_sync.run_placement_scores()

    with transaction(engine) as session:
        scopes = session.scalars(sa.select(PlacementScoreModel.scope)).all()
    assert sorted(set(scopes)) == ["region", "use1-az1", "use1-az4"]
    assert len(scopes) == 3 * len(groups)
    assert _count(engine, SpotPriceModel) == 0
    assert _runs(engine) == [("placement_scores", "ok", "test")]


def test_the_advisor_job_stores_interruption_bands(
    engine: Engine, clients: AwsClients, advisor_server: str
) -> None:
    _context(engine, clients, advisor_url=advisor_server)

    oracle_sync.run_advisor()

    with transaction(engine) as session:
        advice = session.scalars(sa.select(InterruptionFrequencyModel)).all()
        assert advice and {row.region for row in advice} == {REGION}
        assert {row.instance_type for row in advice} <= set(TYPES)
        assert all(row.source_detail == advisor_server for row in advice)
    assert _runs(engine) == [("advisor", "ok", "test")]


def test_a_failing_sync_job_is_recorded_as_an_error(engine: Engine, clients: AwsClients) -> None:
    # Nothing listens on port 9 of 127.0.0.1: the feed cannot be fetched.
    _context(engine, clients, advisor_url="http://127.0.0.1:9/spot-advisor-data.json")

    answered = oracle_sync.run_advisor()

    assert _count(engine, InterruptionFrequencyModel) == 0
    with transaction(engine) as session:
        run = session.scalars(sa.select(JobRunModel)).one()
        assert (run.job, run.status) == ("advisor", "error")
        assert run.error and run.error.startswith("advisor: ")
        assert run.details["summary"]["advisor"]["status"] == "failed"
        # The run returned is the run recorded.
        assert (answered.job, answered.status, answered.error) == (run.job, run.status, run.error)
        assert answered.details == run.details
        assert answered.duration_s == pytest.approx(run.duration_s)
