"""POST /plans, GET /plans/{id}, POST /plans/{id}/apply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Path

from oracle.locks import DatabaseLock
from scheduler import plan_store
from scheduler.actuator.apply_lock import apply_in_progress_message
from scheduler.actuator.ec2 import check_launch_config
from scheduler.actuator.executor import Actuator
from scheduler.api.auth import ContextDep, ReadAuth, WriteAuth
from scheduler.api.errors import ApiError
from scheduler.api.responses import errors
from scheduler.api.schemas import (
    ApplyPlanRequest,
    ApplyResponse,
    CreatePlanRequest,
    PlannedAction,
    PlanResponse,
)
from scheduler.services import plans as plan_service
from scheduler.slo import parse_slo

router = APIRouter(tags=["plans"])
PlanId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "/plans",
    status_code=201,
    summary="Make (or record) a plan and store it",
    dependencies=[WriteAuth],
    responses=errors(401, 403, 409, 413, 503),
)
def create_plan(context: ContextDep, request: CreatePlanRequest) -> PlanResponse:
    plan_id = plan_service.create_plan(
        context.engine,
        context.settings,
        slo_tokens_per_second=parse_slo(request.slo),
        model=request.model,
        markets=request.markets,
        allocations=[a.model_dump() for a in request.allocations]
        if request.allocations is not None
        else None,
        origin="api",
    )
    return _plan(context, plan_id)


@router.get(
    "/plans/{plan_id}",
    summary="A stored plan",
    dependencies=[ReadAuth],
    responses=errors(401, 403, 404, 503),
)
def get_plan(context: ContextDep, plan_id: PlanId) -> PlanResponse:
    return _plan(context, plan_id)


@router.post(
    "/plans/{plan_id}/apply",
    summary="Make the fleet match a plan (make-before-break); dry_run only lists the actions",
    dependencies=[WriteAuth],
    responses=errors(401, 403, 404, 409, 413, 503),
)
def apply_plan(
    context: ContextDep,
    plan_id: PlanId,
    background: BackgroundTasks,
    request: Annotated[ApplyPlanRequest | None, Body()] = None,
) -> ApplyResponse:
    dry_run = request.dry_run if request else False
    _plan(context, plan_id)  # 404 before anything happens
    if not dry_run:
        check_launch_config(context.settings.service)  # 422 before anything happens
    actuator = context.actuator_factory()
    actions = [PlannedAction(**a.to_dict()) for a in actuator.plan_actions(plan_id)]
    if not dry_run:
        lock = context.apply_lock()
        if not lock.try_acquire():
            raise ApiError(409, "apply_in_progress", apply_in_progress_message(context.service))
        background.add_task(_apply_then_release, lock, actuator, plan_id)
    return ApplyResponse(
        plan_id=plan_id,
        dry_run=dry_run,
        status="planned" if dry_run else "accepted",
        actions=actions,
    )


def _apply_then_release(lock: DatabaseLock, actuator: Actuator, plan_id: int) -> None:
    try:
        actuator.apply(plan_id)
    finally:
        lock.release()


def _plan(context: ContextDep, plan_id: int) -> PlanResponse:
    plan = plan_store.get_plan(context.engine, plan_id)
    if plan is None or plan.service != context.service:
        raise ApiError(404, "not_found", f"no plan {plan_id}; list plans with GET /actions")
    return PlanResponse.model_validate(plan, from_attributes=True)
