"""The actuator against moto's EC2 and ELBv2: apply, make-before-break, capacity fallback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import (
    BenchmarkRunModel,
    CapacityErrorModel,
    OnDemandPriceModel,
    PoolObservationModel,
)
from scheduler.actuator.ec2 import Ec2Adapter
from scheduler.actuator.executor import MAX_REPLANS, Actuator
from scheduler.actuator.fallback import ReplanRequest
from scheduler.config import Settings
from scheduler.models import ActionModel, PlanModel, ReplicaModel
from scheduler.plan_store import latest_applied_plan
from tests.scheduler.fleet_helpers import (
    SpotRefused,
    allocation,
    hand_plan,
    live_by_pool,
    running_by_pool,
    wanted_by_pool,
)


def test_apply_makes_the_fleet_match_the_plan(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    make_actuator: Callable[..., Actuator],
) -> None:
    zones = network["zones"]
    plan = [allocation(zones[0], 2), allocation(zones[1], 1, market="on-demand")]
    plan_id = hand_plan(engine, plan)
    actuator = make_actuator(engine)

    dry = actuator.apply(plan_id, dry_run=True)
    assert [a.kind for a in dry.actions] == ["launch"] * 3
    assert running_by_pool(aws) == {}

    result = actuator.apply(plan_id)
    assert len(result.ready) == 3 and not result.failed
    assert running_by_pool(aws) == wanted_by_pool(plan)
    assert live_by_pool(engine) == wanted_by_pool(plan)

    reservations = aws("ec2").describe_instances()["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    by_zone = {i["Placement"]["AvailabilityZone"]: i for i in instances}
    assert by_zone[zones[0][0]].get("InstanceLifecycle") == "spot"
    assert "InstanceLifecycle" not in by_zone[zones[1][0]]
    assert {i["SubnetId"] for i in instances} == {
        network["subnets"][zones[0][1]],
        network["subnets"][zones[1][1]],
    }
    registered = actuator.target_group.registered()  # type: ignore[union-attr]
    assert registered == {i["InstanceId"] for i in instances}
    # Applying the same plan again does nothing.
    assert actuator.apply(plan_id).actions == []


def test_a_new_plan_is_applied_make_before_break(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    make_actuator: Callable[..., Actuator],
) -> None:
    zones = network["zones"]
    actuator = make_actuator(engine)
    actuator.apply(hand_plan(engine, [allocation(zones[0], 2)]))
    new_plan = [allocation(zones[0], 1), allocation(zones[2], 2, instance_type="g6.xlarge")]
    result = actuator.apply(hand_plan(engine, new_plan))

    assert len(result.terminated) == 1 and len(result.ready) == 2
    assert running_by_pool(aws) == wanted_by_pool(new_plan)
    with transaction(engine) as session:
        journal = session.scalars(sa.select(ActionModel).order_by(ActionModel.id)).all()
        kinds = [(a.kind, a.status) for a in journal]
    # Every launch (and its registration) precedes the first deregistration and termination.
    first_break = kinds.index(("deregister", "done"))
    assert ("launch", "done") not in kinds[first_break:]
    assert kinds.count(("register", "done")) == 4
    assert kinds[-1] == ("terminate", "done")


def test_nothing_is_terminated_while_new_replicas_are_not_ready(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    zones = network["zones"]
    actuator = make_actuator(engine)
    actuator.apply(hand_plan(engine, [allocation(zones[0], 1)]))
    spec = settings.service.spec.model_copy(update={"readiness_timeout_s": 0.05})
    slow = settings.model_copy(
        update={"service": settings.service.model_copy(update={"spec": spec})}
    )
    never_ready = make_actuator(engine, settings=slow)
    never_ready.probe = lambda _url: False
    result = never_ready.apply(hand_plan(engine, [allocation(zones[1], 1)]))

    assert result.terminated == [] and len(result.failed) == 1
    # The old replica still serves; the failed new one was terminated.
    assert running_by_pool(aws) == wanted_by_pool([allocation(zones[0], 1)])
    with transaction(engine) as session:
        states = dict(session.execute(sa.select(ReplicaModel.id, ReplicaModel.state)).all())
    assert sorted(states.values()) == ["FAILED", "READY"]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "InsufficientInstanceCapacity",
            "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you "
            "requested (us-east-1a).",
        ),
        ("MaxSpotInstanceCountExceeded", "Max spot instance count exceeded"),
    ],
)
def test_capacity_and_quota_errors_fall_back_to_on_demand(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
    code: str,
    message: str,
) -> None:
    zones = network["zones"]
    client = SpotRefused(aws("ec2"), code, message)
    ec2 = Ec2Adapter(lambda _region: client, settings.service, model="m")
    actuator = make_actuator(engine, ec2=ec2)
    result = actuator.apply(hand_plan(engine, [allocation(zones[0], 2)]))

    assert client.refused == 2
    assert len(result.capacity_errors) == 2 and code in result.capacity_errors[0]
    assert len(result.replans) == 1
    # On-demand pools are per region (zone ""); the failed AZ stays the placement hint.
    on_demand = {"us-east-1//g5.xlarge/on-demand": 2}
    assert running_by_pool(aws) == on_demand
    assert live_by_pool(engine) == on_demand
    instances = [i for r in aws("ec2").describe_instances()["Reservations"] for i in r["Instances"]]
    assert {i["Placement"]["AvailabilityZone"] for i in instances} == {zones[0][0]}
    with transaction(engine) as session:
        marks = session.scalars(sa.select(CapacityErrorModel)).all()
        assert {(m.zone, m.market, m.error_code) for m in marks} == {(zones[0][1], "spot", code)}
        assert all(m.expires_at > m.observed_at for m in marks)
        # The oracle's risk evidence: two failed launches in the AZ, two launches on demand.
        seen = session.execute(
            sa.select(
                PoolObservationModel.zone, PoolObservationModel.market, PoolObservationModel.kind
            )
        ).all()
        assert sorted(seen) == sorted(
            [(zones[0][1], "spot", "capacity-error")] * 2 + [("", "on-demand", "launch")] * 2
        )


@pytest.mark.parametrize("fallback", [True, False])
def test_when_the_replans_are_spent_the_rest_is_covered_on_demand(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
    fallback: bool,
) -> None:
    """A replanner that keeps choosing spot pools (as the planner does while others remain)
    meets a refusal each time; after MAX_REPLANS replans the executor buys the missing
    capacity on demand, unless service.on_demand_fallback is off."""
    zones = network["zones"]
    use, client, asked, actuator = _spot_refused_everywhere(
        engine, aws, zones, settings, make_actuator, "g6.xlarge", fallback=fallback
    )
    result = actuator.apply(hand_plan(engine, [allocation(zones[0], 2, instance_type="g6.xlarge")]))

    assert len(asked) == MAX_REPLANS
    assert client.refused == 2 * (MAX_REPLANS + 1)
    if not fallback:
        assert len(result.replans) == MAX_REPLANS
        assert running_by_pool(aws) == {}
        return
    assert len(result.replans) == MAX_REPLANS + 1
    assert running_by_pool(aws) == {"us-east-1//g6.xlarge/on-demand": 2}
    with transaction(engine) as session:
        cover = session.get_one(PlanModel, result.replans[-1])
        assert cover.origin == "fallback" and cover.document["fallback_of"] == result.replans[-2]
    applied = latest_applied_plan(engine, use.service.name)
    assert applied is not None and applied.id == result.replans[-1]


def _spot_refused_everywhere(
    engine: Engine,
    aws: Callable[..., Any],
    zones: list[tuple[str, str]],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
    instance_type: str,
    *,
    fallback: bool,
) -> tuple[Settings, SpotRefused, list[ReplanRequest], Actuator]:
    """An actuator whose every spot launch meets InsufficientInstanceCapacity and whose
    replanner keeps choosing two ``instance_type`` in the next AZ (as the planner does while
    spot pools remain); the settings, the client, the replan requests and the actuator."""
    client = SpotRefused(
        aws("ec2"), "InsufficientInstanceCapacity", "We currently do not have sufficient capacity."
    )
    use = settings.model_copy(
        update={"service": settings.service.model_copy(update={"on_demand_fallback": fallback})}
    )
    ec2 = Ec2Adapter(lambda _region: client, use.service, model="m")
    asked: list[ReplanRequest] = []

    def spot_again(request: ReplanRequest) -> int:
        asked.append(request)
        zone = zones[len(asked) % len(zones)]
        return hand_plan(engine, [allocation(zone, 2, instance_type=instance_type)])

    actuator = make_actuator(engine, ec2=ec2, settings=use, replan=spot_again)
    return use, client, asked, actuator


def test_the_on_demand_cover_is_the_cheapest_type_that_serves_as_much(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    """Spot g5.4xlarge keeps failing: the cover runs on-demand g5.xlarge, which the oracle says
    serves the plan's model as fast (same GPU) at a lower list price ($1.006/h against
    $1.624/h); the cover plan's row carries the on-demand price and that type's goodput."""
    zones = network["zones"]
    at = datetime.now(UTC) - timedelta(days=1)
    with transaction(engine) as session:
        for instance_type, price in (("g5.xlarge", 1.006), ("g5.4xlarge", 1.624)):
            session.add(
                OnDemandPriceModel(
                    region="us-east-1", instance_type=instance_type, operating_system="Linux",
                    effective_date=at, price_usd_per_hour=price, source="file", observed_at=at,
                )
            )  # fmt: skip
            session.add(
                BenchmarkRunModel(
                    model="m", instance_type=instance_type, workload_id="chat-mix-v1",
                    ttft_p95_ms_slo=2000.0, tpot_p95_ms_slo=100.0,
                    goodput_tokens_per_second=250.0, source="measured", observed_at=at,
                )
            )  # fmt: skip
    _, _, _, actuator = _spot_refused_everywhere(
        engine, aws, zones, settings, make_actuator, "g5.4xlarge", fallback=True
    )
    result = actuator.apply(
        hand_plan(engine, [allocation(zones[0], 2, instance_type="g5.4xlarge")])
    )

    assert running_by_pool(aws) == {"us-east-1//g5.xlarge/on-demand": 2}
    with transaction(engine) as session:
        cover = session.get_one(PlanModel, result.replans[-1])
        (row,) = cover.allocations
    assert (row["instance_type"], row["market"], row["count"]) == ("g5.xlarge", "on-demand", 2)
    assert row["price_usd_per_hour_each"] == 1.006
    assert row["tokens_per_second_each"] == 250.0


def test_create_fleet_instant_launches_tagged_instances(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    ec2 = aws("ec2")
    template = ec2.create_launch_template(
        LaunchTemplateName="llm", LaunchTemplateData={"ImageId": network["image"]}
    )["LaunchTemplate"]["LaunchTemplateId"]
    spec = settings.service.spec.model_copy(update={"launch_template_id": template})
    service = settings.service.model_copy(update={"launch_api": "create-fleet", "spec": spec})
    fleet_settings = settings.model_copy(update={"service": service})
    zones = network["zones"]
    plan = [allocation(zones[1], 1), allocation(zones[2], 1, market="on-demand")]
    result = make_actuator(engine, settings=fleet_settings).apply(hand_plan(engine, plan))

    assert len(result.ready) == 2
    assert running_by_pool(aws) == wanted_by_pool(plan)  # found by their tags
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert {i["SubnetId"] for i in instances} == {
        network["subnets"][zones[1][1]],
        network["subnets"][zones[2][1]],
    }
