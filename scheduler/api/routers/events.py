"""POST /events/ec2: EventBridge EC2 events (interruption, rebalance, state change)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from scheduler.api.auth import ContextDep, WriteAuth
from scheduler.api.responses import errors
from scheduler.api.schemas import EventResponse, PostEc2EventRequest
from scheduler.events import handle_event, parse_event

router = APIRouter(tags=["events"])


@router.post(
    "/events/ec2",
    summary="Handle an EventBridge EC2 event (as an EventBridge API destination sends it)",
    dependencies=[WriteAuth],
    responses=errors(401, 403, 413, 503),
)
def post_event(context: ContextDep, request: PostEc2EventRequest) -> EventResponse:
    received = time.perf_counter()
    event = parse_event(request.model_dump(mode="json", by_alias=True))
    outcome = handle_event(context.actuator_factory(), event, channel="api", received=received)
    return EventResponse(
        event_id=event.event_id, duplicate=outcome.duplicate, result=outcome.to_dict()
    )
