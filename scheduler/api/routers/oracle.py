"""GET /prices and GET /benchmarks: read-only views of the oracle."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from oracle.db import transaction
from oracle.models import BenchmarkRunModel
from oracle.stats import pool_stats, pool_stats_to_dict
from scheduler.api.auth import ContextDep, ReadAuth
from scheduler.api.responses import errors
from scheduler.api.schemas import BenchmarkResponse, Name, PoolPriceResponse

router = APIRouter(tags=["oracle"], dependencies=[ReadAuth], responses=errors(401, 403, 503))

Names = Annotated[list[Annotated[Name, Query(max_length=64)]] | None, Query(max_length=100)]


@router.get("/prices", summary="Spot pool price statistics (the oracle's view now)")
def get_prices(
    context: ContextDep,
    region: Names = None,
    instance_type: Names = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[PoolPriceResponse]:
    with transaction(context.engine) as session:
        stats = pool_stats(session, regions=region or None, instance_types=instance_type or None)
    return [PoolPriceResponse(**pool_stats_to_dict(s)) for s in stats[:limit]]


@router.get("/benchmarks", summary="Goodput figures per model and instance type")
def get_benchmarks(
    context: ContextDep,
    model: Annotated[Name | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[BenchmarkResponse]:
    with transaction(context.engine) as session:
        query = sa.select(BenchmarkRunModel).order_by(BenchmarkRunModel.id.desc()).limit(limit)
        if model:
            query = query.where(BenchmarkRunModel.model == model)
        return [
            BenchmarkResponse.model_validate(run, from_attributes=True)
            for run in session.scalars(query)
        ]
