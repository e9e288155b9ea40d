"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oracle import db
from scheduler.api.auth import ContextDep, ReadAuth
from scheduler.api.errors import ApiError
from scheduler.api.metrics import registry_for

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated")
def readyz(context: ContextDep) -> dict[str, str]:
    try:
        current = db.current_revision(context.engine)
    except Exception as error:
        raise ApiError(503, "database_unavailable", str(error).splitlines()[0]) from None
    if current != db.head_revision(context.engine):
        raise ApiError(503, "schema_behind", f"database at {current}; run `scheduler db upgrade`")
    return {"status": "ready", "revision": current or ""}


@router.get("/metrics", summary="Prometheus metrics", dependencies=[ReadAuth])
def metrics(context: ContextDep) -> Response:
    registry = context.extras.get("registry")
    if registry is None:
        registry = context.extras["registry"] = registry_for(context.engine, context.service)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
