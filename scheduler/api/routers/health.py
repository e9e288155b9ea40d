"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oracle import db
from scheduler.api.auth import ContextDep, ReadAuth
from scheduler.api.errors import ApiError
from scheduler.api.metrics import registry_for
from scheduler.api.responses import errors
from scheduler.api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up", responses=errors())
def healthz() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get("/readyz", summary="The database is reachable and migrated", responses=errors(503))
def readyz(context: ContextDep) -> ReadyResponse:
    try:
        current = db.current_revision(context.engine)
    except Exception as error:
        raise ApiError(503, "database_unavailable", str(error).splitlines()[0]) from None
    if current != db.head_revision(context.engine):
        raise ApiError(503, "schema_behind", f"database at {current}; run `scheduler db upgrade`")
    return ReadyResponse(status="ready", revision=current or "")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[ReadAuth],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **errors(401, 403, 503)},
)
def metrics(context: ContextDep) -> Response:
    registry = context.extras.get("registry")
    if registry is None:
        registry = context.extras["registry"] = registry_for(context.engine, context.service)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
