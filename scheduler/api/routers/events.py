"""POST /events/ec2: EventBridge EC2 events (interruption, rebalance, state change)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body

from scheduler.api.auth import ContextDep, WriteAuth
from scheduler.api.schemas import ErrorResponse, EventResponse
from scheduler.events import handle_event, parse_event

router = APIRouter(tags=["events"])


@router.post(
    "/events/ec2",
    summary="Handle an EventBridge EC2 event (as an EventBridge API destination sends it)",
    dependencies=[WriteAuth],
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def post_event(
    context: ContextDep,
    payload: Annotated[dict[str, Any], Body(description="The EventBridge event, as is")],
) -> EventResponse:
    received = time.perf_counter()
    event = parse_event(payload)
    result = handle_event(context.actuator_factory(), event, channel="api", received=received)
    return EventResponse(
        event_id=event.event_id, duplicate=bool(result.get("duplicate")), result=result
    )
