"""`sync_aws` end to end on SQLite and PostgreSQL: moto's server for what it implements, Stubber
with real response shapes for the rest, a local proxy for throttling."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import botocore.retries.standard
import httpx
import pytest
import sqlalchemy as sa
from botocore.stub import Stubber
from sqlalchemy.engine import Engine

from oracle.aws import instance_types
from oracle.aws.clients import AwsClients
from oracle.aws.placement import group_instance_types
from oracle.aws.quotas import VCPU_QUOTAS
from oracle.aws.sync import OracleSyncOptions, SyncError, sync_aws
from oracle.db import transaction
from oracle.errors import InputError
from oracle.models import (
    AvailabilityZoneModel,
    IngestRunModel,
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OfferingModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    ServiceQuotaModel,
    SpotPriceModel,
)

from .conftest import (
    NOW,
    TYPES,
    placement_response,
    price_list_item,
    pricing_params,
    quota_response,
    stub,
)

#: The catalog and prices only: the calls moto implements.
MOTO_KINDS = ("catalog", "spot_prices")


def options(**changes: Any) -> OracleSyncOptions:
    base = OracleSyncOptions(
        regions=["us-east-1"],
        instance_types=TYPES,
        now=NOW,
        kinds=MOTO_KINDS,
        placement_target_capacities=(4,),
        max_parallel_regions=2,
    )
    return replace(base, **changes)


def rows(engine: Engine, model: type[Any], *where: Any) -> list[Any]:
    with transaction(engine) as session:
        return list(session.scalars(sa.select(model).where(*where)))


def capture_spot_requests(clients: AwsClients, region: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    clients.ec2(region).meta.events.register(
        "provide-client-params.ec2.DescribeSpotPriceHistory",
        lambda params, **_: sent.append(dict(params)),
    )
    return sent


def test_catalog_and_prices_of_two_regions(engine: Engine, aws_clients: AwsClients) -> None:
    progress: list[tuple[str, str, int, int]] = []

    summary = sync_aws(
        engine,
        aws_clients,
        config=options(regions=["us-east-1", "eu-west-1"]),
        on_progress=lambda *event: progress.append(event),
    )

    assert summary.succeeded == ["eu-west-1", "us-east-1"]
    assert summary.failed == []
    types = rows(engine, InstanceTypeModel)
    assert {row.instance_type for row in types} == set(TYPES)
    assert all(row.source == "aws" and row.observed_at == NOW for row in types)
    zones = {row.zone_name: row.zone_id for row in rows(engine, AvailabilityZoneModel)}
    offerings = rows(engine, OfferingModel)
    assert {row.region for row in offerings} == {"us-east-1", "eu-west-1"}
    for row in offerings:
        assert row.zone == row.availability_zone_id == zones[row.availability_zone]
    prices = rows(engine, SpotPriceModel)
    assert prices and {row.region for row in prices} == {"us-east-1", "eu-west-1"}
    offered = {(row.region, row.zone, row.instance_type) for row in offerings}
    for price in prices:
        assert (price.region, price.zone, price.instance_type) in offered
        assert price.availability_zone_id == zones[price.availability_zone]
        assert price.ingest_run_id is not None
    runs = rows(engine, IngestRunModel)
    assert sorted((run.region, run.kind, run.status) for run in runs) == [
        ("eu-west-1", "catalog", "ok"),
        ("eu-west-1", "spot_prices", "ok"),
        ("us-east-1", "catalog", "ok"),
        ("us-east-1", "spot_prices", "ok"),
    ]
    price_runs = {run.region: run for run in runs if run.kind == "spot_prices"}
    for region in ("us-east-1", "eu-west-1"):
        assert price_runs[region].rows == sum(1 for p in prices if p.region == region)
    assert ("us-east-1", "spot_prices", 2, 2) in progress
    assert summary.to_dict()["rows"]["spot_prices"] == len(prices)


def test_no_aws_request_is_sent_while_the_thread_holds_a_database_connection(
    engine: Engine, aws_clients: AwsClients
) -> None:
    held: dict[int, int] = {}
    sends: list[tuple[str, int]] = []

    def checkout(*_: object) -> None:
        held[threading.get_ident()] = held.get(threading.get_ident(), 0) + 1

    def checkin(*_: object) -> None:
        held[threading.get_ident()] = held.get(threading.get_ident(), 0) - 1

    def before_send(request: Any, **_: object) -> None:
        sends.append((request.url, held.get(threading.get_ident(), 0)))

    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)
    for region in ("us-east-1", "eu-west-1"):
        aws_clients.ec2(region).meta.events.register("before-send", before_send)

    summary = sync_aws(engine, aws_clients, config=options(regions=["us-east-1", "eu-west-1"]))

    assert summary.succeeded == ["eu-west-1", "us-east-1"]
    assert len(sends) >= 8
    assert [url for url, connections in sends if connections] == []


def test_second_sync_asks_from_the_watermark_and_adds_nothing(
    engine: Engine, aws_clients: AwsClients
) -> None:
    # moto stamps every record 2006-01-02 15:04:05Z: a 22-year backfill window reaches it.
    config = options(days=8000)
    sent = capture_spot_requests(aws_clients, "us-east-1")
    first = sync_aws(engine, aws_clients, config=config)
    stored = rows(engine, SpotPriceModel)
    watermark = max(row.timestamp for row in stored)

    second = sync_aws(engine, aws_clients, config=replace(config, now=NOW + timedelta(days=1)))

    assert first.regions[0].kinds[1].rows == len(stored) > 0
    assert sent[0]["StartTime"] == NOW - timedelta(days=8000)
    assert sent[1]["StartTime"] == watermark == datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC)
    assert sent[1]["EndTime"] == NOW + timedelta(days=1)
    assert second.regions[0].kinds[1].rows == 0
    assert len(rows(engine, SpotPriceModel)) == len(stored)


def test_watermark_is_per_region_from_aws_rows_and_new_types_are_backfilled(
    engine: Engine, aws_clients: AwsClients
) -> None:
    def record(region: str, instance_type: str, at: datetime, source: str = "aws") -> dict:
        return {
            "region": region,
            "zone": f"{region}a",
            "availability_zone": f"{region}a",
            "instance_type": instance_type,
            "product_description": "Linux/UNIX",
            "timestamp": at,
            "price_usd_per_hour": 0.5,
            "source": source,
            "observed_at": at,
        }

    with transaction(engine) as session:
        session.execute(
            sa.insert(SpotPriceModel),
            [
                record("us-east-1", "g5.xlarge", NOW - timedelta(days=2)),
                record("us-east-1", "g5.2xlarge", NOW - timedelta(days=5)),
                # Neither a file's rows nor another region's move this region's watermark.
                record("us-east-1", "g5.4xlarge", NOW - timedelta(hours=1), source="file"),
                record("eu-west-1", "g6.xlarge", NOW - timedelta(hours=1)),
            ],
        )
    sent = capture_spot_requests(aws_clients, "us-east-1")

    sync_aws(engine, aws_clients, config=options())

    assert [(params["InstanceTypes"], params["StartTime"]) for params in sent] == [
        (["g5.2xlarge", "g5.xlarge"], NOW - timedelta(days=5)),
        (["g5.4xlarge", "g6.xlarge", "p5.48xlarge"], NOW - timedelta(days=90)),
    ]
    (run,) = rows(engine, IngestRunModel, IngestRunModel.kind == "spot_prices")
    assert run.detail == (
        f"2 type(s) from {(NOW - timedelta(days=5)).isoformat()} (watermark); "
        f"3 type(s) from {(NOW - timedelta(days=90)).isoformat()} (90-day backfill)"
    )


def test_every_kind_of_one_region(
    engine: Engine, aws_clients: AwsClients, stubs: list[Stubber], advisor_server: str
) -> None:
    region = "us-east-1"
    specs = instance_types.describe_accelerated_types(aws_clients.ec2(region), instance_types=TYPES)
    groups = group_instance_types(specs, types_per_query=3)
    placement = stub(stubs, aws_clients.spot_placement(region))
    for group in groups:
        for single_zone in (True, False):
            placement.add_response(
                "get_spot_placement_scores",
                placement_response(region, {"use1-az1": 9, "use1-az4": 2} if single_zone else None),
                {
                    "InstanceTypes": list(group),
                    "TargetCapacity": 4,
                    "TargetCapacityUnitType": "units",
                    "SingleAvailabilityZone": single_zone,
                    "RegionNames": [region],
                },
            )
    pricing = stub(stubs, aws_clients.pricing("us-east-1"))
    list_prices = {"g5.xlarge": "1.006", "g5.2xlarge": "1.212", "g5.4xlarge": "1.624"}
    for instance_type in sorted(TYPES):
        usd = list_prices.get(instance_type)
        items = (
            [price_list_item(instance_type=instance_type, region=region, usd=usd)] if usd else []
        )
        pricing.add_response(
            "get_products",
            {"FormatVersion": "aws_v1", "PriceList": items},
            pricing_params(region, instance_type),
        )
    quotas = stub(stubs, aws_clients.service_quotas(region))
    for code in VCPU_QUOTAS:
        quotas.add_response(
            "get_service_quota",
            quota_response(region, code, 256.0),
            {"ServiceCode": "ec2", "QuotaCode": code},
        )

    summary = sync_aws(
        engine,
        aws_clients,
        config=options(kinds=OracleSyncOptions.kinds, advisor_url=advisor_server),
    )

    assert [result.status for result in summary.regions] == ["ok"]
    assert summary.advisor is not None and summary.advisor.status == "ok"
    scores = rows(engine, PlacementScoreModel)
    assert len(scores) == len(groups) * 3
    assert {row.scope for row in scores} == {"use1-az1", "use1-az4", "region"}
    assert all(len(row.instance_types.split(",")) >= 3 for row in scores)
    assert all(row.target_capacity == 4 and row.observed_at == NOW for row in scores)
    on_demand = {
        row.instance_type: row.price_usd_per_hour for row in rows(engine, OnDemandPriceModel)
    }
    assert on_demand == {"g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624}
    assert {row.quota_code: row.value_vcpus for row in rows(engine, ServiceQuotaModel)} == {
        code: 256.0 for code in VCPU_QUOTAS
    }
    advice = rows(engine, InterruptionFrequencyModel)
    assert {row.instance_type for row in advice} <= set(TYPES)
    assert {row.region for row in advice} == {region}
    assert all(row.source == "aws" and row.source_detail == advisor_server for row in advice)
    assert all(row.observed_at == datetime(2026, 11, 18, 6, tzinfo=UTC) for row in advice)
    runs = {(run.region, run.kind): run for run in rows(engine, IngestRunModel)}
    assert runs[(None, "advisor")].rows == len(advice) > 0
    assert runs[(region, "placement_scores")].rows == len(scores)
    assert all(run.status == "ok" for run in runs.values())


def test_failing_regions_are_recorded_and_skipped(
    engine: Engine, aws_clients: AwsClients, stubs: list[Stubber]
) -> None:
    broken = stub(stubs, aws_clients.ec2("eu-west-1"))
    broken.add_client_error(
        "describe_availability_zones",
        service_error_code="AuthFailure",
        service_message="AWS was not able to validate the provided access credentials",
        http_status_code=401,
    )

    summary = sync_aws(
        engine, aws_clients, config=options(regions=["us-east-1", "eu-west-1", "ap-east-1"])
    )

    assert summary.succeeded == ["us-east-1"]
    assert summary.failed == ["ap-east-1", "eu-west-1"]
    failed = {run.region: run for run in rows(engine, IngestRunModel) if run.status == "failed"}
    assert set(failed) == {"ap-east-1", "eu-west-1"}
    assert failed["eu-west-1"].error.startswith("AuthFailure: AWS was not able to validate")
    assert failed["ap-east-1"].error.startswith("OptInRequired")
    assert "\n" not in failed["eu-west-1"].error
    assert {row.region for row in rows(engine, SpotPriceModel)} == {"us-east-1"}


def test_a_failing_kind_leaves_the_region_partial(
    engine: Engine, aws_clients: AwsClients, stubs: list[Stubber]
) -> None:
    quotas = stub(stubs, aws_clients.service_quotas("us-east-1"))
    # Stubber answers before botocore's retry loop, so this is what remains after the retries.
    quotas.add_client_error(
        "get_service_quota",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
    )

    summary = sync_aws(engine, aws_clients, config=options(kinds=(*MOTO_KINDS, "service_quotas")))

    (result,) = summary.regions
    assert result.status == "partial"
    assert summary.succeeded == ["us-east-1"]
    assert result.error == "service_quotas: ThrottlingException: Rate exceeded"
    assert rows(engine, SpotPriceModel)
    assert rows(engine, ServiceQuotaModel) == []


class ThrottlingProxy:
    """An HTTP proxy in front of moto answering the first ``throttles`` requests of ``action``
    with EC2's RequestLimitExceeded (HTTP 503, EC2's XML error shape)."""

    BODY = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        b"</Error></Errors><RequestID>8f7724cf-496f-496e-8fe3-example</RequestID></Response>"
    )

    def __init__(self, upstream: str, action: str, throttles: int) -> None:
        self.seen = 0
        self.throttled = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if f"Action={action}".encode() in body:
                    proxy.seen += 1
                    if proxy.throttled < throttles:
                        proxy.throttled += 1
                        self._reply(503, proxy.BODY, "text/xml;charset=UTF-8")
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.post(upstream + self.path, content=body, headers=headers)
                self._reply(answer.status_code, answer.content, answer.headers["content-type"])

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ThrottlingProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """botocore's backoff computes its delays as usual but the test does not sleep them."""
    attempts: list[int] = []

    def delay_amount(self: Any, context: Any) -> float:
        attempts.append(context.attempt_number)
        return 0.0

    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", delay_amount)
    yield attempts


def test_throttling_is_retried_with_backoff_then_succeeds(
    engine: Engine, moto_url: str, aws_session: boto3.Session, no_backoff_sleep: list[int]
) -> None:
    with ThrottlingProxy(moto_url, "DescribeAvailabilityZones", throttles=2) as proxy:
        clients = AwsClients(session=aws_session, endpoint_url=proxy.url, max_attempts=3)
        summary = sync_aws(engine, clients, config=options())

    assert summary.succeeded == ["us-east-1"]
    assert (proxy.throttled, proxy.seen) == (2, 3)
    assert no_backoff_sleep == [1, 2]
    assert rows(engine, OfferingModel)


def test_throttling_past_max_attempts_fails_the_region_only(
    engine: Engine, moto_url: str, aws_session: boto3.Session, no_backoff_sleep: list[int]
) -> None:
    with ThrottlingProxy(moto_url, "DescribeAvailabilityZones", throttles=5) as proxy:
        clients = AwsClients(session=aws_session, endpoint_url=proxy.url, max_attempts=2)
        summary = sync_aws(engine, clients, config=options())

    assert proxy.seen == 2
    assert summary.failed == ["us-east-1"]
    (run,) = rows(engine, IngestRunModel)
    assert run.status == "failed"
    assert run.error.startswith("RequestLimitExceeded")


def test_unknown_region_is_refused_before_writing(engine: Engine, aws_clients: AwsClients) -> None:
    with pytest.raises(InputError, match="unknown region 'us-nowhere-1'"):
        sync_aws(engine, aws_clients, config=options(regions=["us-east-1", "us-nowhere-1"]))

    assert rows(engine, IngestRunModel) == []


def test_unlisted_regions_without_a_region_list_stop_the_sync(
    engine: Engine, aws_clients: AwsClients, stubs: list[Stubber]
) -> None:
    home = stub(stubs, aws_clients.ec2("us-east-1"))
    home.add_client_error(
        "describe_regions",
        service_error_code="AuthFailure",
        service_message="AWS was not able to validate the provided access credentials",
        http_status_code=401,
    )

    with pytest.raises(SyncError, match=r"cannot list the AWS regions .*AuthFailure"):
        sync_aws(engine, aws_clients, config=options(regions=[]))
    assert rows(engine, IngestRunModel) == []
