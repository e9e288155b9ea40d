"""GET /prices and GET /benchmarks: read-only views of the oracle."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from oracle.db import transaction
from oracle.models import BenchmarkRunModel
from oracle.stats import pool_stats, pool_stats_to_dict
from scheduler.api.auth import ContextDep, ReadAuth

router = APIRouter(tags=["oracle"], dependencies=[ReadAuth])


@router.get("/prices", summary="Spot pool price statistics (the oracle's view now)")
def get_prices(
    context: ContextDep,
    region: Annotated[list[str] | None, Query(max_length=50)] = None,
    instance_type: Annotated[list[str] | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    with transaction(context.engine) as session:
        stats = pool_stats(session, regions=region or None, instance_types=instance_type or None)
    return [pool_stats_to_dict(s) for s in stats[:limit]]


@router.get("/benchmarks", summary="Goodput figures per model and instance type")
def get_benchmarks(
    context: ContextDep,
    model: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    with transaction(context.engine) as session:
        query = sa.select(BenchmarkRunModel).order_by(BenchmarkRunModel.id.desc()).limit(limit)
        if model:
            query = query.where(BenchmarkRunModel.model == model)
        return [
            {
                "id": run.id,
                "model": run.model,
                "instance_type": run.instance_type,
                "goodput_tokens_per_second": run.goodput_tokens_per_second,
                "workload_id": run.workload_id,
                "source": run.source,
                "observed_at": run.observed_at,
                "status": run.status,
            }
            for run in session.scalars(query)
        ]
