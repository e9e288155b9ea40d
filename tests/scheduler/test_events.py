"""Interruption and rebalance events: replacement launched, target deregistered, recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.errors import InputError
from oracle.models import InterruptionEventModel, PoolObservationModel
from scheduler.actuator.executor import Actuator
from scheduler.actuator.reconcile import reconcile
from scheduler.config import Settings
from scheduler.events import EventOutcome, Replacement, handle_event, parse_event, poll_sqs
from scheduler.models import EventModel
from tests.scheduler.fleet_helpers import (
    allocation,
    ec2_event,
    hand_plan,
    interruption,
    replica_rows,
    running_by_pool,
)


def _applied(engine: Engine, network: dict[str, Any], actuator: Actuator) -> dict[str, Any]:
    zones = network["zones"]
    actuator.apply(hand_plan(engine, [allocation(zones[0], 2), allocation(zones[1], 1)]))
    return replica_rows(engine)


def test_interruption_launches_a_replacement_and_deregisters_the_target(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    make_actuator: Callable[..., Actuator],
) -> None:
    actuator = make_actuator(engine)
    rows = _applied(engine, network, actuator)
    zone0 = network["zones"][0][1]
    victim = next(i for i, row in rows.items() if f"/{zone0}/" in row[2])
    assert victim in actuator.target_group.registered()  # type: ignore[union-attr]

    result = handle_event(actuator, parse_event(interruption(victim)), channel="api")

    replacement = result.replacement
    assert result.deregistered is True and replacement is not None
    assert len(replacement.launched) == 1
    assert isinstance(replacement.event_to_launch_s, float) and replacement.event_to_launch_s >= 0
    # Its JSON form, stored on the event row, keeps the keys (and their order) it always had.
    assert list(result.to_dict()) == [
        "event_id",
        "kind",
        "replica_id",
        "pool",
        "deregistered",
        "launched",
        "plan_id",
        "event_to_launch_s",
        "errors",
    ]
    with transaction(engine) as session:
        stored = session.scalars(sa.select(EventModel).where(EventModel.event_id == "e-1")).one()
        assert stored.result == result.to_dict()
    assert victim not in actuator.target_group.registered()  # type: ignore[union-attr]
    after = replica_rows(engine)
    assert after[victim][1] == "TERMINATING"
    # The replacement is out of the interrupted pool; the rest of the fleet is untouched.
    new = [i for i in after if i not in rows]
    assert len(new) == 1 and f"/{zone0}/" not in after[new[0]][2]
    assert sum(running_by_pool(aws).values()) == 4
    with transaction(engine) as session:
        recorded = session.scalars(sa.select(InterruptionEventModel)).one()
        assert (recorded.zone, recorded.instance_id, recorded.kind) == (
            zone0,
            victim,
            "interruption",
        )
        notice = session.scalars(
            sa.select(PoolObservationModel).where(PoolObservationModel.kind == "interruption")
        ).one()
        assert (notice.zone, notice.market, notice.count) == (zone0, "spot", 1)

    # A redelivered event is recognised: no second launch.
    again = handle_event(actuator, parse_event(interruption(victim)), channel="sqs")
    assert again.duplicate and again.to_dict() == {"duplicate": True, "event_id": "e-1"}
    assert sum(running_by_pool(aws).values()) == 4

    # EC2 then ends the instance: the replica is PREEMPTED.
    aws("ec2").terminate_instances(InstanceIds=[victim])
    ended = ec2_event("EC2 Instance State-change Notification", victim, "e-2", state="terminated")
    closed = handle_event(actuator, parse_event(ended), channel="api")
    assert closed.state == "PREEMPTED"
    assert closed.to_dict() == {
        "event_id": "e-2",
        "kind": "state-change",
        "replica_id": after[victim][0],
        "state": "PREEMPTED",
    }

    # A late warning for the instance already gone leaves the replica's final state alone.
    late = handle_event(actuator, parse_event(interruption(victim, "e-3")), channel="api")
    assert late.replica_id == after[victim][0]
    assert replica_rows(engine)[victim][1] == "PREEMPTED"


@pytest.mark.parametrize("early", [False, True])
def test_rebalance_recommendation_launches_early_only_when_configured(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
    early: bool,
) -> None:
    service = settings.service.model_copy(update={"launch_early_on_rebalance": early})
    actuator = make_actuator(engine, settings=settings.model_copy(update={"service": service}))
    rows = _applied(engine, network, actuator)
    victim = next(iter(rows))
    event = ec2_event("EC2 Instance Rebalance Recommendation", victim, "r-1")
    result = handle_event(actuator, parse_event(event), channel="api")

    assert result.replacement is not None
    assert len(result.replacement.launched) == (1 if early else 0)
    if not early:  # nothing tried: no plan, no errors
        assert result.to_dict() == {
            "event_id": "r-1",
            "kind": "rebalance-recommendation",
            "replica_id": result.replica_id,
            "pool": result.pool,
            "launched": [],
        }
    assert sum(running_by_pool(aws).values()) == (4 if early else 3)
    assert replica_rows(engine)[victim][1] == "READY"  # still serving until interrupted


def test_events_are_read_from_sqs(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    make_actuator: Callable[..., Actuator],
) -> None:
    actuator = make_actuator(engine)
    rows = _applied(engine, network, actuator)
    victim = next(iter(rows))
    sqs = aws("sqs")
    queue = sqs.create_queue(QueueName="spot-events")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(interruption(victim, "q-1")))
    sqs.send_message(QueueUrl=queue, MessageBody="not an event")

    assert poll_sqs(actuator, sqs, queue) == 1
    assert replica_rows(engine)[victim][1] == "TERMINATING"
    # The next reconcile finishes the interrupted replica: terminated, and counted as PREEMPTED.
    reconcile(actuator, grace_s=0)
    assert replica_rows(engine)[victim][1] == "PREEMPTED"
    assert sum(running_by_pool(aws).values()) == 3
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []
    with transaction(engine) as session:
        kinds = sorted(session.scalars(sa.select(EventModel.kind)))
    assert kinds == ["invalid", "spot-interruption"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "JSON object"),
        ({"detail-type": "Something Else"}, "detail-type"),
        ({"detail-type": "EC2 Spot Instance Interruption Warning", "detail": {}}, "instance-id"),
        (
            {
                "detail-type": "EC2 Spot Instance Interruption Warning",
                "detail": {"instance-id": "i-1"},
                "region": "us-east-1",
            },
            "'id'",
        ),
        (
            {
                "detail-type": "EC2 Spot Instance Interruption Warning",
                "id": "x",
                "time": "soon",
                "detail": {"instance-id": "i-1"},
                "region": "us-east-1",
            },
            "'time'",
        ),
    ],
)
def test_bad_events_name_the_field(payload: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_event(payload)
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("outcome", "document"),
    [
        (
            EventOutcome(
                "e-9", kind="spot-interruption", note="instance not managed by this service"
            ),
            {
                "event_id": "e-9",
                "kind": "spot-interruption",
                "replica_id": None,
                "note": "instance not managed by this service",
            },
        ),
        (
            EventOutcome(
                "e-9",
                kind="spot-interruption",
                replica_id=3,
                pool="g6.xlarge spot use1-az1",
                deregistered=False,
                replacement=Replacement(launched=[], note="no applied plan to keep"),
            ),
            {
                "event_id": "e-9",
                "kind": "spot-interruption",
                "replica_id": 3,
                "pool": "g6.xlarge spot use1-az1",
                "deregistered": False,
                "launched": [],
                "note": "no applied plan to keep",
            },
        ),
        (
            EventOutcome(
                "e-9",
                kind="rebalance-recommendation",
                replica_id=3,
                pool="g6.xlarge spot use1-az1",
                replacement=Replacement(
                    launched=[7],
                    note="no plan without the failed pools",
                    errors=["InsufficientInstanceCapacity"],
                ),
            ),
            {
                "event_id": "e-9",
                "kind": "rebalance-recommendation",
                "replica_id": 3,
                "pool": "g6.xlarge spot use1-az1",
                "launched": [7],
                "note": "no plan without the failed pools",
                "errors": ["InsufficientInstanceCapacity"],
            },
        ),
        (
            EventOutcome(
                "e-9",
                kind="spot-interruption",
                replica_id=3,
                pool="g6.xlarge spot use1-az1",
                deregistered=True,
                replacement=Replacement(
                    launched=[7], plan_id=12, event_to_launch_s=None, errors=[]
                ),
            ),
            {
                "event_id": "e-9",
                "kind": "spot-interruption",
                "replica_id": 3,
                "pool": "g6.xlarge spot use1-az1",
                "deregistered": True,
                "launched": [7],
                "plan_id": 12,
                "event_to_launch_s": None,
                "errors": [],
            },
        ),
    ],
)
def test_outcome_json_keeps_its_keys_in_order(
    outcome: EventOutcome, document: dict[str, Any]
) -> None:
    """The stored and answered JSON of each kind of outcome: the keys, their order and values
    that ``handle_event`` wrote when it built the dict itself."""
    assert list(outcome.to_dict().items()) == list(document.items())
