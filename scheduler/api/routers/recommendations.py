"""GET /recommendations: the best plan now, with an ETag."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from starlette.concurrency import run_in_threadpool

from scheduler.api.auth import ContextDep, ReadAuth
from scheduler.slo import parse_slo

router = APIRouter(tags=["plans"])


@router.get(
    "/recommendations",
    summary="The current best plan for an SLO (the planner's JSON)",
    dependencies=[ReadAuth],
    responses={200: {"description": "The plan document"}, 304: {"description": "Unchanged"}},
)
async def get_recommendations(
    context: ContextDep,
    slo: Annotated[str, Query(description="Throughput SLO, e.g. 500tok/s", max_length=64)],
    model: Annotated[str | None, Query(max_length=256)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    tokens_per_second = parse_slo(slo)
    chosen = model or context.settings.service.spec.model or context.settings.planner.model
    cache = context.recommendations
    recommendation, check = cache.peek(tokens_per_second, chosen)
    if recommendation is None:  # planning and the oracle look block: off the event loop
        recommendation = await run_in_threadpool(
            functools.partial(cache.get, tokens_per_second, chosen, check=check)
        )
    headers = {"ETag": recommendation.etag, "Cache-Control": "no-cache"}
    if if_none_match == recommendation.etag:
        return Response(status_code=304, headers=headers)
    return Response(recommendation.body, media_type="application/json", headers=headers)
