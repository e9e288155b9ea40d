"""EC2 events (EventBridge, through POST /events/ec2 or an SQS queue) and what they trigger.

On a spot interruption warning, as the seed describes: find the replica by instance ID, mark it
TERMINATING, take it out of the load balancer, and launch a replacement at once in a pool
chosen by replanning without the interrupted pool; the event is recorded, and the oracle counts
it against the pool. A rebalance recommendation does the same launch early when configured.
A state-change to shutting-down or terminated closes the replica. Redelivered events (same
EventBridge id) are recognised and not acted on twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from oracle.db import transaction
from oracle.errors import InputError
from oracle.models import InterruptionEventModel
from oracle.observations import record_held, record_notice
from scheduler.actuator import journal
from scheduler.actuator.aws import SqsApi
from scheduler.actuator.command import Command
from scheduler.actuator.diff import diff
from scheduler.actuator.executor import Actuator
from scheduler.actuator.fallback import ReplanRequest
from scheduler.actuator.types import Action, Pool
from scheduler.models import FINAL_STATES, EventModel, ReplicaModel, ReplicaState
from scheduler.plan_store import latest_applied_plan

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

DETAIL_TYPES = {
    "EC2 Spot Instance Interruption Warning": "spot-interruption",
    "EC2 Instance Rebalance Recommendation": "rebalance-recommendation",
    "EC2 Instance State-change Notification": "state-change",
}


@dataclass(frozen=True)
class Ec2Event:
    event_id: str
    kind: str
    instance_id: str
    region: str
    time: datetime
    #: The new state of a state-change, or the interruption action ("terminate", "stop").
    detail: str
    payload: dict[str, Any]


def parse_event(payload: Any) -> Ec2Event:
    """Read an EventBridge EC2 event; :class:`InputError` naming the field when it is not one."""
    if not isinstance(payload, dict):
        raise InputError("event: expected a JSON object (an EventBridge event)")
    detail_type = payload.get("detail-type")
    if detail_type not in DETAIL_TYPES:
        raise InputError(
            f"event: 'detail-type' {detail_type!r} is not one of {sorted(DETAIL_TYPES)}"
        )
    detail = payload.get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("instance-id"), str):
        raise InputError("event: 'detail.instance-id' is missing; send the event as EC2 emits it")
    for key in ("id", "region"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise InputError(f"event: '{key}' is missing or not a string")
    try:
        when = datetime.fromisoformat(str(payload.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        raise InputError("event: 'time' is not an ISO 8601 timestamp") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    kind = DETAIL_TYPES[detail_type]
    return Ec2Event(
        event_id=payload["id"],
        kind=kind,
        instance_id=detail["instance-id"],
        region=payload["region"],
        time=when.astimezone(UTC),
        detail=str(detail.get("state") or detail.get("instance-action") or ""),
        payload=payload,
    )


@dataclass(frozen=True)
class Replacement:
    """What replacing a leaving replica did: the replicas ``launched`` and either the plan they
    serve (``plan_id``, with ``event_to_launch_s`` from the event to the first accepted launch)
    or why no plan was made (``note``); ``errors``: the capacity errors met, ``None`` when no
    launch was tried."""

    launched: list[int]
    note: str | None = None
    plan_id: int | None = None
    event_to_launch_s: float | None = None
    errors: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"launched": self.launched}
        if self.note is not None:
            document["note"] = self.note
        if self.plan_id is not None:
            document["plan_id"] = self.plan_id
            document["event_to_launch_s"] = self.event_to_launch_s
        if self.errors is not None:
            document["errors"] = self.errors
        return document


@dataclass(frozen=True)
class EventOutcome:
    """What :func:`handle_event` did with one event (its JSON form is stored on the event row
    and answered by ``POST /events/ec2``).

    A redelivered event is a ``duplicate`` and nothing else is set. Otherwise ``replica_id``
    names the replica the instance is (``None`` with a ``note`` when the service does not
    manage it); a state change gives the replica's ``state`` after it; an interruption warning
    or a rebalance recommendation gives the ``pool``, ``deregistered`` (for a warning: whether
    the replica was in the load balancer) and the ``replacement``.
    """

    event_id: str
    kind: str | None = None
    duplicate: bool = False
    replica_id: int | None = None
    note: str | None = None
    state: str | None = None
    pool: str | None = None
    deregistered: bool | None = None
    replacement: Replacement | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.duplicate:
            return {"duplicate": True, "event_id": self.event_id}
        document: dict[str, Any] = {
            "event_id": self.event_id,
            "kind": self.kind,
            "replica_id": self.replica_id,
        }
        for key, value in (
            ("note", self.note),
            ("state", self.state),
            ("pool", self.pool),
            ("deregistered", self.deregistered),
        ):
            if value is not None:
                document[key] = value
        if self.replacement is not None:
            document.update(self.replacement.to_dict())
        return document


def handle_event(
    actuator: Actuator, event: Ec2Event, *, channel: str, received: float | None = None
) -> EventOutcome:
    """Act on one event; return what was done (its JSON form is also stored on the event row).

    ``received`` is the ``time.perf_counter()`` reading when the event arrived; the time from
    it to the replacement's launch request being accepted is reported as
    ``event_to_launch_s``.
    """
    received = time.perf_counter() if received is None else received
    event_row_id = _record(actuator, event, channel)
    if event_row_id is None:
        return EventOutcome(event_id=event.event_id, duplicate=True)
    replica = _replica_by_instance(actuator, event.instance_id)
    if replica is None:
        outcome = EventOutcome(
            event_id=event.event_id, kind=event.kind, note="instance not managed by this service"
        )
    elif event.kind == "state-change":
        outcome = _state_change(actuator, replica, event)
    else:
        outcome = _interruption(actuator, replica, event, received)
    with transaction(actuator.engine) as session:
        row = session.get_one(EventModel, event_row_id)
        row.handled_at = actuator.clock()
        row.result = outcome.to_dict()
    return outcome


def poll_sqs(actuator: Actuator, sqs: SqsApi, queue_url: str, *, wait_s: int = 0) -> int:
    """Receive one batch of events from SQS, handle each, delete it; return the count.

    A message that is not an EC2 event is deleted too (it can never be handled), and noted in
    the events table under a generated id.
    """
    response = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
    )
    handled = 0
    for message in response.get("Messages", []):
        received = time.perf_counter()
        try:
            event = parse_event(json.loads(message["Body"]))
        except (InputError, ValueError) as error:
            _record_invalid(actuator, message, str(error))
        else:
            handle_event(actuator, event, channel="sqs", received=received)
            handled += 1
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return handled


# -- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Replica:
    id: int
    pool: Pool
    state: str
    availability_zone: str | None
    launched_at: datetime | None = None


def _record(actuator: Actuator, event: Ec2Event, channel: str) -> int | None:
    try:
        with transaction(actuator.engine) as session:
            row = EventModel(
                event_id=event.event_id,
                received_at=actuator.clock(),
                channel=channel,
                kind=event.kind,
                instance_id=event.instance_id,
                region=event.region,
                payload=event.payload,
                result={},
            )
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return None


def _record_invalid(actuator: Actuator, message: MessageTypeDef, error: str) -> None:
    with transaction(actuator.engine) as session:
        session.add(
            EventModel(
                event_id=f"sqs:{message.get('MessageId', '')}"[:64],
                received_at=actuator.clock(),
                channel="sqs",
                kind="invalid",
                payload={"body": str(message.get("Body", ""))[:4000]},
                handled_at=actuator.clock(),
                result={"error": error},
            )
        )


def _replica_by_instance(actuator: Actuator, instance_id: str) -> _Replica | None:
    with transaction(actuator.engine) as session:
        row = session.scalars(
            sa.select(ReplicaModel).where(
                ReplicaModel.service == actuator.service, ReplicaModel.instance_id == instance_id
            )
        ).first()
        if row is None:
            return None
        pool = Pool(row.region, row.zone, row.instance_type, row.market)
        return _Replica(row.id, pool, row.state, row.availability_zone, row.launched_at)


def _state_change(actuator: Actuator, replica: _Replica, event: Ec2Event) -> EventOutcome:
    outcome = EventOutcome(event_id=event.event_id, kind=event.kind, replica_id=replica.id)
    if event.detail not in ("shutting-down", "terminated", "stopped", "stopping"):
        return replace(outcome, state=replica.state)
    interrupted = replica.state == ReplicaState.TERMINATING and replica.pool.market == "spot"
    final = ReplicaState.PREEMPTED if interrupted else ReplicaState.TERMINATED
    if replica.state not in FINAL_STATES:
        record_held(
            actuator.engine,
            replica.pool,
            since=replica.launched_at,
            until=event.time,
            source_detail=f"replica {replica.id}",
        )
        actuator.deregister(replica.id, reason=f"instance {event.detail}")
        journal.set_replica(
            actuator.engine,
            replica.id,
            state=final,
            terminated_at=event.time,
            target_registered=False,
        )
    return replace(outcome, state=final)


def _interruption(
    actuator: Actuator, replica: _Replica, event: Ec2Event, received: float
) -> EventOutcome:
    interruption = event.kind == "spot-interruption"
    with transaction(actuator.engine) as session:
        session.add(
            InterruptionEventModel(
                source="aws",
                source_detail=f"EventBridge {event.event_id}",
                observed_at=event.time,
                region=replica.pool.region,
                zone=replica.pool.zone,
                instance_type=replica.pool.instance_type,
                instance_id=event.instance_id,
                kind="interruption" if interruption else "rebalance",
            )
        )
        record_notice(
            session,
            replica.pool,
            interruption=interruption,
            observed_at=event.time,
            source_detail=f"EventBridge {event.event_id}",
        )
    outcome = EventOutcome(
        event_id=event.event_id, kind=event.kind, replica_id=replica.id, pool=replica.pool.label
    )
    if interruption:
        reason = f"spot interruption warning for {event.instance_id} ({event.detail})"
        if replica.state not in FINAL_STATES:  # a late warning for an instance already gone
            journal.set_replica(
                actuator.engine, replica.id, state=ReplicaState.TERMINATING, state_reason=reason
            )
        outcome = replace(outcome, deregistered=actuator.deregister(replica.id, reason=reason))
    elif not actuator.settings.service.launch_early_on_rebalance:
        return replace(outcome, replacement=Replacement(launched=[]))
    else:
        reason = f"rebalance recommendation for {event.instance_id}"
    return replace(outcome, replacement=_replace(actuator, replica, reason, received))


def _replace(actuator: Actuator, replica: _Replica, reason: str, received: float) -> Replacement:
    """Replan without the interrupted pool and launch what the new plan lacks, as a command
    the executor runs without waiting; a launch refused for capacity adds its pool to those
    left out and replans again (as apply does)."""
    current = latest_applied_plan(actuator.engine, actuator.service)
    if current is None:
        return Replacement(launched=[], note="no applied plan to keep")
    fleet = [
        r
        for r in journal.live_fleet(actuator.engine, actuator.service)
        if r.replica_id != replica.id
    ]
    new_plan = actuator.replan(
        ReplanRequest(current.id, frozenset({replica.pool}), tuple(fleet), reason=reason)
    )
    if new_plan is None:
        return Replacement(launched=[], note="no plan without the failed pools", errors=[])
    result = actuator.execute(
        replacement_command(
            new_plan,
            diff(fleet, actuator.plan_allocations(new_plan)),
            replica_id=replica.id,
            pool=replica.pool,
            reason=reason,
            slo_tokens_per_second=current.slo_tokens_per_second,
        )
    )
    if result.replan_failed:
        return Replacement(
            launched=result.launched,
            note="no plan without the failed pools",
            errors=result.capacity_errors,
        )
    first = result.first_launch_perf_s
    return Replacement(
        launched=result.launched,
        plan_id=result.replans[-1] if result.replans else new_plan,
        event_to_launch_s=None if first is None else first - received,
        errors=result.capacity_errors,
    )


def replacement_command(
    plan_id: int,
    actions: Sequence[Action],
    *,
    replica_id: int,
    pool: Pool,
    reason: str,
    slo_tokens_per_second: float,
) -> Command:
    """Launch at once what plan ``plan_id`` lacks (``actions``: its diff against the fleet
    without the leaving replica); retire nothing (EC2 takes the interrupted instance)."""
    return Command(
        plan_id=plan_id,
        reason=reason,
        launches=tuple(a for a in actions if a.kind == "launch"),
        slo_tokens_per_second=slo_tokens_per_second,
        exclude_pools=frozenset({pool}),
        leaving=frozenset({replica_id}),
        wait=False,
    )
