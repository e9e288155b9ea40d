"""The four EC2 vCPU quotas the planner respects, from Service Quotas (GetServiceQuota)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

#: Quota code -> name, as the Service Quotas console lists them for service code "ec2".
VCPU_QUOTAS = {
    "L-3819A6DF": "All G and VT Spot Instance Requests",
    "L-7212CCBC": "All P Spot Instance Requests",
    "L-DB2E81BA": "Running On-Demand G and VT instances",
    "L-417A185B": "Running On-Demand P instances",
}


@dataclass(frozen=True)
class ServiceQuota:
    region: str
    quota_code: str
    quota_name: str
    value_vcpus: float
    #: "applied" (the account's value) or "default" (AWS's default, when none is applied).
    origin: str


def get_vcpu_quotas(service_quotas: Any, *, region: str) -> list[ServiceQuota]:
    """The account's value of each quota in :data:`VCPU_QUOTAS`, else AWS's default."""
    quotas = []
    for code, name in VCPU_QUOTAS.items():
        origin = "applied"
        try:
            response = service_quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)
        except ClientError as error:
            # An account that never changed a quota may hold no applied value for it.
            if error.response.get("Error", {}).get("Code") != "NoSuchResourceException":
                raise
            origin = "default"
            response = service_quotas.get_aws_default_service_quota(
                ServiceCode="ec2", QuotaCode=code
            )
        quota = response["Quota"]
        quotas.append(
            ServiceQuota(
                region=region,
                quota_code=code,
                quota_name=quota.get("QuotaName") or name,
                value_vcpus=float(quota["Value"]),
                origin=origin,
            )
        )
    return quotas
