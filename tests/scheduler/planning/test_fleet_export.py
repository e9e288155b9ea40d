"""`scheduler plan --format fleet`: one CreateFleet request per pool that botocore's CreateFleet
input shape accepts, and with which EC2 Fleet's fill rule launches exactly the plan's counts."""

from __future__ import annotations

import json
import math
import shlex
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.planning.formats import fleet_export, fleet_requests
from scheduler.planning.model import Allocation, Plan, PoolKey

CREATE_FLEET = (
    botocore.session.get_session().get_service_model("ec2").operation_model("CreateFleet")
)
ZONES = {
    "us-east-1": [("us-east-1a", "use1-az6"), ("us-east-1b", "use1-az1")],
    "us-west-2": [("us-west-2a", "usw2-az1"), ("us-west-2b", "usw2-az2")],
}


def _plan(allocations: list[Allocation]) -> Plan:
    return Plan(
        model="meta-llama/Llama-3.1-8B-Instruct",
        as_of=datetime(2026, 12, 6, tzinfo=UTC),
        hedge="az",
        slo_tokens_per_second=500.0,
        required_tokens_per_second=550.0,
        allocations=allocations,
        tokens_per_second=sum(a.count * a.tokens_per_second_each for a in allocations),
        tokens_per_second_after_worst_loss=0.0,
        worst_loss=None,
        cost_usd_per_hour=1.0,
        price_usd_per_hour=1.0,
        interruption_usd_per_hour=0.0,
        switching_usd_per_hour=0.0,
        binding=[],
        baselines={},
        data=[],
        warnings=[],
        candidates=len(allocations),
    )


@st.composite
def _allocations(draw: st.DrawFn) -> list[Allocation]:
    pools: dict[PoolKey, Allocation] = {}
    for _ in range(draw(st.integers(1, 6))):
        region = draw(st.sampled_from(sorted(ZONES)))
        instance_type = draw(st.sampled_from(["g5.xlarge", "g6.xlarge", "g6e.2xlarge"]))
        spot = draw(st.booleans())
        name, zone_id = draw(st.sampled_from(ZONES[region])) if spot else (None, None)
        pool = PoolKey(region, zone_id or "", instance_type, "spot" if spot else "on-demand")
        pools[pool] = Allocation(
            pool=pool,
            availability_zone=name,
            availability_zone_id=zone_id,
            count=draw(st.integers(0, 7)),
            # Goodput with a fraction, as measured: 1026.4 tok/s made the old export launch 2.
            tokens_per_second_each=draw(st.floats(50.0, 5000.0)),
            price_usd_per_hour_each=draw(st.floats(0.1, 40.0)),
        )
    return list(pools.values())


def _fill(request: dict[str, Any]) -> Counter[tuple[str, str | None, str]]:
    """EC2 Fleet's fill rule: launch instances of the overrides until their weights reach the
    target capacity of each market (here one override per request)."""
    target = request["TargetCapacitySpecification"]
    launched: Counter[tuple[str, str | None, str]] = Counter()
    (config,) = request["LaunchTemplateConfigs"]
    (override,) = config["Overrides"]
    weight = override["WeightedCapacity"]
    for market, key in (("spot", "SpotTargetCapacity"), ("on-demand", "OnDemandTargetCapacity")):
        instances = math.ceil(target[key] / weight - 1e-9)
        if instances:
            launched[(override["InstanceType"], override.get("AvailabilityZone"), market)] += (
                instances
            )
    return launched


@settings(max_examples=60, deadline=None)
@given(allocations=_allocations())
def test_ec2_fleet_launches_exactly_the_planned_counts_and_botocore_accepts_each_request(
    allocations: list[Allocation],
) -> None:
    plan = _plan(allocations)
    entries = fleet_export(plan)
    assert [e["request"] for e in entries] == fleet_requests(plan)
    launched: Counter[tuple[str, str, str | None, str]] = Counter()
    for entry in entries:
        request = entry["request"]
        report = ParamValidator().validate(request, CREATE_FLEET.input_shape)
        assert not report.has_errors(), report.generate_report()
        (config,) = request["LaunchTemplateConfigs"]
        assert len(config["Overrides"]) == 1  # one pool, so one zone, per request
        for (instance_type, zone, market), count in _fill(request).items():
            launched[(entry["region"], instance_type, zone, market)] += count
        # As printed: the AWS CLI command carries the region and exactly this request.
        words = shlex.split(entry["aws_cli"])
        assert words[:5] == ["aws", "ec2", "create-fleet", "--region", entry["region"]]
        assert words[5] == "--cli-input-json" and json.loads(words[6]) == request
    planned = Counter(
        {
            (a.pool.region, a.pool.instance_type, a.availability_zone, a.pool.market): a.count
            for a in allocations
            if a.count > 0
        }
    )
    assert launched == planned


def test_moto_creates_each_exported_fleet_with_the_planned_instances(
    moto_server: str, monkeypatch: Any
) -> None:
    """The requests as exported, sent to moto's EC2 (server mode) as `create-fleet` would."""
    import boto3
    import httpx

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    httpx.post(f"{moto_server}/moto-api/reset")
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_server)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(
        LaunchTemplateName="spot-scheduler-vllm", LaunchTemplateData={"ImageId": image}
    )
    spot = PoolKey("us-east-1", "use1-az1", "g5.xlarge", "spot")
    on_demand = PoolKey("us-east-1", "", "g6.xlarge", "on-demand")
    plan = _plan(
        [
            Allocation(spot, "us-east-1b", "use1-az1", 2, 1026.4, 0.4),
            Allocation(on_demand, None, None, 1, 700.0, 0.8),
        ]
    )
    launched: Counter[tuple[str, str]] = Counter()
    for entry in fleet_export(plan):
        fleet = ec2.create_fleet(**entry["request"])["FleetId"]
        ids = [
            i["InstanceId"] for i in ec2.describe_fleet_instances(FleetId=fleet)["ActiveInstances"]
        ]
        for reservation in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for instance in reservation["Instances"]:
                launched[(instance["InstanceType"], entry["market"])] += 1
    # (moto places a fleet's instances in its default AZ whatever the override says; the
    # zone of each request is checked above, against botocore's shape and the fill rule.)
    assert launched == Counter({("g5.xlarge", "spot"): 2, ("g6.xlarge", "on-demand"): 1})
