"""On-demand prices from the Pricing API (Stubber with GetProducts' real response shape)."""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.stub import Stubber

from oracle.aws.clients import AwsClients
from oracle.aws.pricing import get_on_demand_price, parse_price_list_item

from .conftest import price_list_item, pricing_params, stub


def test_price_is_read_from_the_price_list_json(
    aws_clients: AwsClients, stubs: list[Stubber]
) -> None:
    client = aws_clients.pricing("us-east-1")
    stubber = stub(stubs, client)
    stubber.add_response(
        "get_products",
        {
            "FormatVersion": "aws_v1",
            "PriceList": [
                price_list_item(instance_type="g5.xlarge", region="us-east-1", usd="1.0060000000")
            ],
        },
        pricing_params("us-east-1", "g5.xlarge"),
    )

    price = get_on_demand_price(client, region="us-east-1", instance_type="g5.xlarge")

    assert price is not None
    assert price.price_usd_per_hour == 1.006
    assert price.effective_date == datetime(2025, 11, 1, tzinfo=UTC)
    assert (price.region, price.instance_type, price.operating_system) == (
        "us-east-1",
        "g5.xlarge",
        "Linux",
    )


def test_pages_are_followed_and_the_newest_price_wins(
    aws_clients: AwsClients, stubs: list[Stubber]
) -> None:
    client = aws_clients.pricing("us-east-1")
    stubber = stub(stubs, client)
    params = pricing_params("us-east-1", "p5.48xlarge")
    old = price_list_item(
        instance_type="p5.48xlarge",
        region="us-east-1",
        usd="98.3200000000",
        effective_date="2024-05-01T00:00:00Z",
    )
    # The June 2025 P-family price cut: a newer effective date with a lower price.
    new = price_list_item(
        instance_type="p5.48xlarge",
        region="us-east-1",
        usd="55.0400000000",
        effective_date="2025-06-01T00:00:00Z",
    )
    stubber.add_response(
        "get_products", {"FormatVersion": "aws_v1", "PriceList": [old], "NextToken": "t1"}, params
    )
    stubber.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": [new]},
        {**params, "NextToken": "t1"},
    )

    price = get_on_demand_price(client, region="us-east-1", instance_type="p5.48xlarge")

    assert price is not None
    assert price.price_usd_per_hour == 55.04
    assert price.effective_date == datetime(2025, 6, 1, tzinfo=UTC)


def test_unlisted_type_has_no_price(aws_clients: AwsClients, stubs: list[Stubber]) -> None:
    client = aws_clients.pricing("us-east-1")
    stubber = stub(stubs, client)
    stubber.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": []},
        pricing_params("eu-west-1", "g6.xlarge"),
    )

    assert get_on_demand_price(client, region="eu-west-1", instance_type="g6.xlarge") is None


def test_zero_prices_and_capacity_blocks_are_left_out() -> None:
    zero = price_list_item(instance_type="g5.xlarge", region="us-east-1", usd="0.0000000000")
    block = price_list_item(
        instance_type="p5.48xlarge", region="us-east-1", usd="31.464", market_option="CapacityBlock"
    )

    assert parse_price_list_item(zero, region="us-east-1", operating_system="Linux") == []
    assert parse_price_list_item(block, region="us-east-1", operating_system="Linux") == []
