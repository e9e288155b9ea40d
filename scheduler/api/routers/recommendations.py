"""GET /recommendations: the best plan now, with an ETag."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from scheduler.api.auth import ContextDep, ReadAuth
from scheduler.api.errors import ApiError
from scheduler.api.responses import errors
from scheduler.api.schemas import MAX_TOKENS_PER_SECOND, Name, RecommendationResponse
from scheduler.services.recommendations import Recommendation
from scheduler.slo import parse_slo

router = APIRouter(tags=["plans"])


@router.get(
    "/recommendations",
    summary="The current best plan for an SLO (the planner's JSON, with its provenance)",
    description="Cached per (SLO, model) until the oracle's data changes. Uncached SLOs are "
    "planned a few at a time (service.max_concurrent_plans); a request that waits longer than "
    "service.plan_queue_wait_s for its turn is answered 503 `busy` with Retry-After. 409 "
    "`infeasible` when no plan meets the SLO. On an empty oracle the service plans on the "
    "embedded sample market, as `scheduler plan` does, and says so (`provenance`, `notes`). "
    "Sent gzip-compressed (`Content-Encoding: gzip`, with an ETag of its own) to a client whose "
    "Accept-Encoding takes gzip; If-None-Match may name either ETag.",
    dependencies=[ReadAuth],
    response_model=RecommendationResponse,
    responses={304: {"description": "Unchanged (If-None-Match)"}, **errors(401, 403, 409, 503)},
)
async def get_recommendations(
    context: ContextDep,
    slo: Annotated[Name, Query(description="Throughput SLO, e.g. 500tok/s", max_length=64)],
    model: Annotated[Name | None, Query(max_length=256)] = None,
    if_none_match: Annotated[str | None, Header(max_length=256)] = None,
    accept_encoding: Annotated[str | None, Header(max_length=256)] = None,
) -> Response:
    tokens_per_second = parse_slo(slo)
    if tokens_per_second > MAX_TOKENS_PER_SECOND:
        raise ApiError(
            422, "invalid_request", f"slo: at most {MAX_TOKENS_PER_SECOND:.0e} tok/s, got {slo}"
        )
    chosen = model or context.settings.service.spec.model or context.settings.planner.model
    cache = context.recommendations
    recommendation, check = cache.peek(tokens_per_second, chosen)
    if recommendation is None:  # planning and the oracle look block: off the event loop
        recommendation = await cache.obtain(tokens_per_second, chosen, check=check)
    # The body is compressed once, when planned: a cached read only forwards bytes (the sample
    # market's plan is 545 KB of JSON, 45 KB gzipped).
    if accepts_gzip(accept_encoding):
        body, etag = recommendation.gzip_body, recommendation.gzip_etag
        headers = {"Content-Encoding": "gzip"}
    else:
        body, etag = recommendation.body, recommendation.etag
        headers = {}
    headers |= {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if if_none_match is not None and _matches(if_none_match, recommendation):
        headers.pop("Content-Encoding", None)
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header accepts gzip: named with q above 0, or not named and
    ``*`` with q above 0 (RFC 9110, 12.5.3)."""
    weights: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        name, _, parameters = item.partition(";")
        weights[name.strip().lower()] = _weight(parameters)
    for name in ("gzip", "x-gzip", "*"):
        if name in weights:
            return weights[name] > 0
    return False


def _weight(parameters: str) -> float:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _matches(if_none_match: str, recommendation: Recommendation) -> bool:
    """Either representation's ETag (or ``*``) among If-None-Match's (weak comparison)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return bool(tags & {"*", recommendation.etag, recommendation.gzip_etag})
