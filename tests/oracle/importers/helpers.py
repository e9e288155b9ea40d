"""Shared by the importer tests: row counts of every table the importers write."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.models import (
    AvailabilityZoneModel,
    IngestRunModel,
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OfferingModel,
    OnDemandPriceModel,
    SpotPriceModel,
)

TABLES = (
    AvailabilityZoneModel,
    InstanceTypeModel,
    OfferingModel,
    SpotPriceModel,
    OnDemandPriceModel,
    InterruptionFrequencyModel,
    IngestRunModel,
)


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            model.__table__.name: connection.execute(
                sa.select(sa.func.count()).select_from(model)
            ).scalar_one()
            for model in TABLES
        }


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
