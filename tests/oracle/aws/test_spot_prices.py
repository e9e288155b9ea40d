"""DescribeSpotPriceHistory through the paginator, against moto's server."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from botocore.stub import Stubber

from oracle.aws.clients import AwsClients
from oracle.aws.spot_prices import describe_spot_price_history

from .conftest import NOW, stub


def test_records_come_back_per_zone_with_aware_utc_times(aws_clients: AwsClients) -> None:
    ec2 = aws_clients.ec2("us-east-1")
    sent: list[dict[str, Any]] = []
    ec2.meta.events.register(
        "provide-client-params.ec2.DescribeSpotPriceHistory",
        lambda params, **_: sent.append(dict(params)),
    )

    records = describe_spot_price_history(
        ec2,
        instance_types=["g5.xlarge", "p5.48xlarge"],
        product_description="Linux/UNIX",
        start=NOW - timedelta(days=90),
        end=NOW,
    )

    assert {record.instance_type for record in records} == {"g5.xlarge", "p5.48xlarge"}
    zones = {record.availability_zone for record in records}
    assert zones and all(zone.startswith("us-east-1") for zone in zones)
    assert all(record.timestamp.tzinfo == UTC for record in records)
    assert all(record.price_usd_per_hour > 0 for record in records)
    assert sent == [
        {
            "InstanceTypes": ["g5.xlarge", "p5.48xlarge"],
            "ProductDescriptions": ["Linux/UNIX"],
            "StartTime": NOW - timedelta(days=90),
            "EndTime": NOW,
        }
    ]


def test_every_page_is_read(aws_clients: AwsClients, stubs: list[Stubber]) -> None:
    # moto never pages, so the second page comes from AWS's documented response shape.
    ec2 = aws_clients.ec2("eu-west-1")
    stubber = stub(stubs, ec2)
    start = NOW - timedelta(days=1)
    params = {
        "InstanceTypes": ["g5.xlarge"],
        "ProductDescriptions": ["Linux/UNIX"],
        "StartTime": start,
        "EndTime": NOW,
    }

    def row(zone: str, price: str, hours: int) -> dict[str, Any]:
        return {
            "AvailabilityZone": zone,
            "InstanceType": "g5.xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": price,
            "Timestamp": NOW - timedelta(hours=hours),
        }

    stubber.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [row("eu-west-1a", "0.4121", 2)], "NextToken": "page-2"},
        params,
    )
    stubber.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [row("eu-west-1b", "0.3950", 30)], "NextToken": ""},
        {**params, "NextToken": "page-2"},
    )

    records = describe_spot_price_history(
        ec2, instance_types=["g5.xlarge"], product_description="Linux/UNIX", start=start, end=NOW
    )

    assert [(r.availability_zone, r.price_usd_per_hour) for r in records] == [
        ("eu-west-1a", 0.4121),
        ("eu-west-1b", 0.3950),
    ]
    # The last change before StartTime comes back too (30 h before the end of a 24 h window).
    assert records[1].timestamp < start
