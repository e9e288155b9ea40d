"""Fixtures of the fleet tests (actuator, services, API, jobs, command line): moto's server
mode for EC2, SQS and ELBv2, and replicas served by bench.fakeserver (OpenAI-compatible, with
vLLM-like /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy.engine import Engine

from bench.fakeserver import FakeServer, FakeServerConfig
from scheduler.actuator.alb import TargetGroup
from scheduler.actuator.ec2 import Ec2Adapter, InstanceInfo
from scheduler.actuator.executor import Actuator
from scheduler.config import ServiceConfig, ServiceSpecConfig, Settings

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_url(moto_server: str) -> str:
    """The moto endpoint; :func:`aws` clears its state for each test."""
    return moto_server


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``aws("ec2", region)``: a boto3 client of the fresh moto server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # A generous timeout: on a loaded machine the reset has taken over the default 5 s.
    httpx.post(f"{moto_url}/moto-api/reset", timeout=60.0)

    def client(name: str, region: str = REGION) -> Any:
        return boto3.client(name, region_name=region, endpoint_url=moto_url)

    yield client


@pytest.fixture
def network(aws: Callable[..., Any]) -> dict[str, Any]:
    """A VPC with one subnet per AZ of us-east-1 (a..c), an AMI and a target group."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = ec2.describe_availability_zones()["AvailabilityZones"][:3]
    subnets = {}
    for index, zone in enumerate(zones):
        subnet = ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.0.{index}.0/24", AvailabilityZone=zone["ZoneName"]
        )["Subnet"]["SubnetId"]
        subnets[zone["ZoneId"]] = subnet
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    elbv2 = aws("elbv2")
    group = elbv2.create_target_group(
        Name="llm", Protocol="HTTP", Port=8081, VpcId=vpc, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    return {
        "vpc": vpc,
        "zones": [(z["ZoneName"], z["ZoneId"]) for z in zones],
        "subnets": subnets,
        "image": image,
        "target_group": group,
    }


@pytest.fixture
def settings(network: dict[str, Any], moto_url: str) -> Settings:
    spec = ServiceSpecConfig(
        image_id=network["image"],
        subnets=network["subnets"],
        readiness_timeout_s=30.0,
        readiness_interval_s=0.01,
    )
    service = ServiceConfig(
        name="llm-test",
        target_group_arn=network["target_group"],
        aws_endpoint_url=moto_url,
        drain_s=0.0,
        spec=spec,
    )
    return Settings(service=service)


@pytest.fixture
def replicas() -> Iterator[Callable[[], FakeServer]]:
    made: list[FakeServer] = []

    def make() -> FakeServer:
        # Any model name is served: the tests plan several models.
        replica = FakeServer(FakeServerConfig(ttft_s=0.0, gap_s=0.0, reject_unknown_model=False))
        replica.start()
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.stop()


class ReplicaPool:
    """Hands each new instance its own fake replica (the instance -> endpoint map)."""

    def __init__(self, make: Callable[[], FakeServer]) -> None:
        self._make = make
        self.by_instance: dict[str, FakeServer] = {}

    def endpoint(self, info: InstanceInfo) -> str:
        if info.instance_id not in self.by_instance:
            self.by_instance[info.instance_id] = self._make()
        return self.by_instance[info.instance_id].url


@pytest.fixture
def replica_pool(replicas: Callable[[], FakeServer]) -> ReplicaPool:
    return ReplicaPool(replicas)


@pytest.fixture
def make_actuator(
    aws: Callable[..., Any], settings: Settings, replica_pool: ReplicaPool
) -> Callable[..., Actuator]:
    from scheduler.actuator.probe import is_ready

    def make(engine: Engine, **kwargs: Any) -> Actuator:
        use = kwargs.pop("settings", settings)
        model = use.planner.model
        ec2 = kwargs.pop("ec2", None) or Ec2Adapter(
            lambda region: aws("ec2", region), use.service, model=model
        )
        return Actuator(
            engine,
            use,
            ec2,
            probe=lambda url: is_ready(url, use.service.spec, model=model, timeout_s=5),
            target_group=TargetGroup(aws("elbv2"), use.service.target_group_arn, port=8081),
            resolve_endpoint=replica_pool.endpoint,
            sleep=lambda _s: None,
            **kwargs,
        )

    return make
