"""GET /fleet and GET /actions: the managed replicas, and what the actuator did and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from scheduler.api.auth import ContextDep, ReadAuth
from scheduler.api.responses import errors
from scheduler.api.schemas import ActionResponse, ReplicaResponse
from scheduler.services import fleet as fleet_service

router = APIRouter(tags=["fleet"], dependencies=[ReadAuth], responses=errors(401, 403, 503))


@router.get("/fleet", summary="Every managed replica: pool, state, launch time, price")
def get_fleet(
    context: ContextDep,
    include_terminated: Annotated[bool, Query()] = False,
) -> list[ReplicaResponse]:
    rows = fleet_service.list_replicas(
        context.engine, service=context.service, include_final=include_terminated
    )
    return [ReplicaResponse(**row.to_dict()) for row in rows]


@router.get("/actions", summary="The actuator's journal, newest first")
def get_actions(
    context: ContextDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    plan_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> list[ActionResponse]:
    rows = fleet_service.list_actions(
        context.engine, service=context.service, limit=limit, plan_id=plan_id
    )
    return [ActionResponse(**row.to_dict()) for row in rows]
