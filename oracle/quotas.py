"""EC2 vCPU service quotas as the oracle knows them: the latest figure per region and code.

The four codes that bound GPU fleets (Service Quotas, service code ``ec2``):

- ``L-3819A6DF`` All G and VT Spot Instance Requests
- ``L-7212CCBC`` All P Spot Instance Requests
- ``L-DB2E81BA`` Running On-Demand G and VT instances
- ``L-417A185B`` Running On-Demand P instances
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from oracle.tables import service_quotas

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: (market, instance class) -> quota code; class "G/VT" or "P".
QUOTA_CODES: dict[tuple[str, str], str] = {
    ("spot", "G/VT"): "L-3819A6DF",
    ("spot", "P"): "L-7212CCBC",
    ("on-demand", "G/VT"): "L-DB2E81BA",
    ("on-demand", "P"): "L-417A185B",
}
QUOTA_NAMES: dict[str, str] = {
    "L-3819A6DF": "All G and VT Spot Instance Requests",
    "L-7212CCBC": "All P Spot Instance Requests",
    "L-DB2E81BA": "Running On-Demand G and VT instances",
    "L-417A185B": "Running On-Demand P instances",
}


@dataclass(frozen=True)
class VcpuQuota:
    region: str
    quota_code: str
    quota_name: str
    value_vcpus: float
    source: str
    observed_at: datetime


@functools.cache
def instance_class(instance_type: str) -> str | None:
    """The quota class of an instance type: ``G/VT`` (g*, vt*), ``P`` (p*), else ``None``."""
    family = instance_type.split(".", 1)[0].lower()
    if family.startswith(("g", "vt")):  # g4dn, g5, g6e, gr6, vt1
        return "G/VT"
    if family.startswith("p"):
        return "P"
    return None


def latest_quotas(
    session: Session | sa.Connection,
    *,
    as_of: datetime | None = None,
    regions: Sequence[str] | None = None,
    codes: Sequence[str] = tuple(QUOTA_NAMES),
) -> dict[tuple[str, str], VcpuQuota]:
    """The newest ingested value per (region, quota code) observed at or before ``as_of``."""
    model = service_quotas.c
    newest = sa.select(
        model.region, model.quota_code, sa.func.max(model.observed_at).label("observed_at")
    ).where(model.quota_code.in_(list(codes)))
    if as_of is not None:
        newest = newest.where(model.observed_at <= as_of)
    if regions:
        newest = newest.where(model.region.in_(list(regions)))
    latest = newest.group_by(model.region, model.quota_code).subquery()
    rows = session.execute(
        sa.select(service_quotas).join(
            latest,
            sa.and_(
                model.region == latest.c.region,
                model.quota_code == latest.c.quota_code,
                model.observed_at == latest.c.observed_at,
            ),
        )
    )
    return {
        (row.region, row.quota_code): VcpuQuota(
            region=row.region,
            quota_code=row.quota_code,
            quota_name=row.quota_name,
            value_vcpus=row.value_vcpus,
            source=row.source,
            observed_at=row.observed_at,
        )
        for row in rows
    }
