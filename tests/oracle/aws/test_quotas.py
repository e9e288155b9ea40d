"""The four EC2 vCPU quotas (Stubber: moto has no Service Quotas for EC2)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from oracle.aws.clients import AwsClients
from oracle.aws.quotas import VCPU_QUOTAS, get_vcpu_quotas

from .conftest import quota_response, stub


def test_applied_values_and_defaults(aws_clients: AwsClients, stubs: list[Stubber]) -> None:
    client = aws_clients.service_quotas("eu-west-1")
    stubber = stub(stubs, client)
    values = {"L-3819A6DF": 64.0, "L-7212CCBC": 192.0, "L-DB2E81BA": 128.0}
    for code, value in values.items():
        stubber.add_response(
            "get_service_quota",
            quota_response("eu-west-1", code, value),
            {"ServiceCode": "ec2", "QuotaCode": code},
        )
    # No applied value for the last one: AWS's default is used.
    stubber.add_client_error(
        "get_service_quota",
        service_error_code="NoSuchResourceException",
        service_message="The request failed because the specified service quota does not exist.",
        http_status_code=400,
        expected_params={"ServiceCode": "ec2", "QuotaCode": "L-417A185B"},
    )
    stubber.add_response(
        "get_aws_default_service_quota",
        quota_response("eu-west-1", "L-417A185B", 0.0),
        {"ServiceCode": "ec2", "QuotaCode": "L-417A185B"},
    )

    quotas = get_vcpu_quotas(client, region="eu-west-1")

    by_code = {quota.quota_code: quota for quota in quotas}
    assert set(by_code) == set(VCPU_QUOTAS)
    assert by_code["L-7212CCBC"].value_vcpus == 192.0
    assert by_code["L-7212CCBC"].quota_name == "All P Spot Instance Requests"
    assert by_code["L-417A185B"].origin == "default"
    assert by_code["L-3819A6DF"].origin == "applied"


def test_access_denied_is_raised(aws_clients: AwsClients, stubs: list[Stubber]) -> None:
    client = aws_clients.service_quotas("eu-west-1")
    stubber = stub(stubs, client)
    stubber.add_client_error(
        "get_service_quota",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform servicequotas:GetServiceQuota",
        http_status_code=400,
    )

    with pytest.raises(ClientError, match="AccessDeniedException"):
        get_vcpu_quotas(client, region="eu-west-1")
