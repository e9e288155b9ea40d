"""AWS for the oracle's tests: moto's server on 127.0.0.1, and real response shapes for the calls
moto lacks (placement scores, Pricing, Service Quotas), served through botocore's Stubber."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from oracle.aws.clients import AwsClients
from oracle.aws.quotas import VCPU_QUOTAS

#: A few GPU types moto knows, offered in us-east-1 and eu-west-1.
TYPES = ("g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g6.xlarge", "p5.48xlarge")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def moto_url(moto_server: str) -> str:
    """The moto endpoint, with its state cleared for this test."""
    httpx.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    return moto_server


@pytest.fixture
def aws_session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def aws_clients(moto_url: str, aws_session: boto3.Session) -> AwsClients:
    return AwsClients(session=aws_session, endpoint_url=moto_url, max_attempts=3)


@pytest.fixture
def stubs() -> Iterator[list[Stubber]]:
    """Stubbers activated by a test; each must have served every response it was given."""
    made: list[Stubber] = []
    yield made
    for stubber in made:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def stub(stubs: list[Stubber], client: Any) -> Stubber:
    stubber = Stubber(client)
    stubber.activate()
    stubs.append(stubber)
    return stubber


def placement_response(region: str, zone_scores: dict[str, int] | None) -> dict[str, Any]:
    """A GetSpotPlacementScores answer: per AZ ID when ``zone_scores``, else per region."""
    if zone_scores is None:
        return {"SpotPlacementScores": [{"Region": region, "Score": 7}]}
    return {
        "SpotPlacementScores": [
            {"Region": region, "AvailabilityZoneId": zone_id, "Score": score}
            for zone_id, score in zone_scores.items()
        ]
    }


def price_list_item(
    *,
    instance_type: str,
    region: str,
    usd: str,
    effective_date: str = "2025-11-01T00:00:00Z",
    market_option: str = "OnDemand",
) -> str:
    """One GetProducts PriceList entry, shaped like AWS's (a JSON string)."""
    sku = f"SKU{abs(hash((instance_type, region, effective_date))) % 10**8:08d}"
    item = {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "capacitystatus": "Used",
                "instanceFamily": "GPU instance",
                "instanceType": instance_type,
                "licenseModel": "No License required",
                "location": "US East (N. Virginia)",
                "locationType": "AWS Region",
                "marketoption": market_option,
                "operatingSystem": "Linux",
                "operation": "RunInstances",
                "preInstalledSw": "NA",
                "regionCode": region,
                "servicecode": "AmazonEC2",
                "tenancy": "Shared",
                "usagetype": f"BoxUsage:{instance_type}",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": f"${usd} per On Demand Linux {instance_type} "
                            "Instance Hour",
                            "appliesTo": [],
                            "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": usd},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": effective_date,
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            }
        },
        "version": "20251120000000",
        "publicationDate": "2025-11-20T00:00:00Z",
    }
    return json.dumps(item)


def pricing_params(region: str, instance_type: str) -> dict[str, Any]:
    fields = (
        ("instanceType", instance_type),
        ("regionCode", region),
        ("operatingSystem", "Linux"),
        ("tenancy", "Shared"),
        ("capacitystatus", "Used"),
        ("preInstalledSw", "NA"),
    )
    return {
        "ServiceCode": "AmazonEC2",
        "Filters": [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in fields],
        "FormatVersion": "aws_v1",
    }


def quota_response(region: str, code: str, value: float) -> dict[str, Any]:
    return {
        "Quota": {
            "ServiceCode": "ec2",
            "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
            "QuotaArn": f"arn:aws:servicequotas:{region}:123456789012:ec2/{code}",
            "QuotaCode": code,
            "QuotaName": VCPU_QUOTAS[code],
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }
    }


@pytest.fixture(scope="session")
def advisor_server(shared_data: Path) -> Iterator[str]:
    """A local HTTP server serving the real Spot Advisor feed at /spot-advisor-data.json."""
    body = (shared_data / "spotinfo-advisor" / "spot-advisor-data.json").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/spot-advisor-data.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Last-Modified", "Wed, 18 Nov 2026 06:00:00 GMT")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/spot-advisor-data.json"
    server.shutdown()
    server.server_close()
