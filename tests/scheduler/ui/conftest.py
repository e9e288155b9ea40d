"""Fixtures of the dashboard's tests: a service on uvicorn (127.0.0.1, a free port) over the
sample market (two regions, four GPU types), with a plan applied to EC2 on moto's server and
replicas served by bench.fakeserver; and headless Chromium from the Debian package, driven by
Playwright (never Playwright's own browsers)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import Engine

from bench.fakeserver import FakeServer, FakeServerConfig
from oracle import db
from oracle.reference import ensure_goodput_figures
from oracle.sample import ingest_sample
from scheduler.actuator.alb import TargetGroup
from scheduler.actuator.ec2 import Ec2Adapter, InstanceInfo
from scheduler.actuator.executor import Actuator
from scheduler.actuator.probe import is_ready
from scheduler.api.app import create_app
from scheduler.api.context import ApiContext
from scheduler.config import PlannerConfig, ServiceConfig, ServiceSpecConfig, Settings
from scheduler.services.planning import plan_and_store
from scheduler.services.recommendations import RecommendationCache
from scheduler.services.wiring import recommend

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-test-token"
REGION = "us-east-1"
SAMPLE_REGIONS = ["us-east-1", "us-west-2"]
SAMPLE_TYPES = ["g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6e.xlarge"]
SLO = "1000tok/s"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's). Missing, it fails the test under CI=true, else skips."""
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class LiveService:
    url: str
    context: ApiContext
    plan_id: int

    def get(self, path: str, **params: Any) -> Any:
        """The API's JSON (with the token: reads may be private)."""
        response = httpx.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()


@pytest.fixture
def sample_engine(make_database: Callable[[str], str]) -> Iterator[Engine]:
    """A migrated SQLite database with a slice of the sample market and reference goodput.
    (The browser tests check pages; the queries behind them run on both backends in
    test_views.py.)"""
    engine = db.make_engine(make_database("sqlite"))
    ingest_sample(engine, seed=2026, regions=SAMPLE_REGIONS, instance_types=SAMPLE_TYPES)
    ensure_goodput_figures(engine, model=PlannerConfig().model)
    yield engine
    engine.dispose()


@pytest.fixture
def moto_network(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh moto: a VPC with one subnet per AZ of us-east-1, an AMI, a target group."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    httpx.post(f"{moto_server}/moto-api/reset")
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for index, zone in enumerate(ec2.describe_availability_zones()["AvailabilityZones"]):
        subnets[zone["ZoneId"]] = ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.0.{index}.0/24", AvailabilityZone=zone["ZoneName"]
        )["Subnet"]["SubnetId"]
    elbv2 = boto3.client("elbv2", region_name=REGION, endpoint_url=moto_server)
    group = elbv2.create_target_group(
        Name="llm", Protocol="HTTP", Port=8081, VpcId=vpc, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    return {
        "endpoint": moto_server,
        "subnets": subnets,
        "image": ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"],
        "target_group": group,
    }


@pytest.fixture
def make_service(
    sample_engine: Engine, moto_network: dict[str, Any], tmp_path: Path
) -> Iterator[Callable[..., LiveService]]:
    """``make_service(private_reads=False)``: plans at the SLO in us-east-1, applies the plan
    to moto (replicas answer the readiness probe from fake vLLM servers), then serves the API
    and the dashboard on uvicorn."""
    servers: list[uvicorn.Server] = []
    threads: list[threading.Thread] = []
    replicas: dict[str, FakeServer] = {}

    def endpoint(info: InstanceInfo) -> str:
        if info.instance_id not in replicas:
            replica = FakeServer(
                FakeServerConfig(ttft_s=0.0, gap_s=0.0, reject_unknown_model=False)
            )
            replica.start()
            replicas[info.instance_id] = replica
        return replicas[info.instance_id].url

    def make(*, private_reads: bool = False) -> LiveService:
        settings = Settings(
            planner=PlannerConfig(regions_allow=[REGION]),
            service=ServiceConfig(
                name="llm-ui",
                api_token=TOKEN,
                private_reads=private_reads,
                aws_endpoint_url=moto_network["endpoint"],
                target_group_arn=moto_network["target_group"],
                drain_s=0.0,
                slo=SLO,
                reports_dir=str(tmp_path / "reports"),
                spec=ServiceSpecConfig(
                    image_id=moto_network["image"],
                    subnets=moto_network["subnets"],
                    readiness_timeout_s=30.0,
                    readiness_interval_s=0.01,
                ),
            ),
        )
        clients = lambda name: boto3.client(  # noqa: E731
            name, region_name=REGION, endpoint_url=moto_network["endpoint"]
        )
        model = settings.planner.model
        actuator = Actuator(
            sample_engine,
            settings,
            Ec2Adapter(
                lambda region: boto3.client(
                    "ec2", region_name=region, endpoint_url=moto_network["endpoint"]
                ),
                settings.service,
                model=model,
            ),
            probe=lambda url: is_ready(url, settings.service.spec, model=model, timeout_s=5),
            target_group=TargetGroup(
                clients("elbv2"), settings.service.target_group_arn, port=8081
            ),
            resolve_endpoint=endpoint,
            sleep=lambda _s: None,
        )
        plan_id, _ = plan_and_store(
            sample_engine, settings, slo_tokens_per_second=1000.0, origin="test"
        )
        actuator.apply(plan_id)
        context = ApiContext(
            engine=sample_engine,
            settings=settings,
            actuator_factory=lambda: actuator,
            recommendations=RecommendationCache(
                sample_engine,
                lambda slo, name: recommend(sample_engine, settings, slo, name),
                ttl_s=60,
            ),
        )
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(context), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        servers.append(server)
        threads.append(thread)
        return LiveService(f"http://127.0.0.1:{port}", context, plan_id)

    yield make
    for server in servers:
        server.should_exit = True
    for thread in threads:
        thread.join(10)
    for replica in replicas.values():
        replica.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
