"""Short transactions around each AWS call: the journal row first, the outcome after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.types import FleetReplica, Pool
from scheduler.models import LIVE_STATES, ActionModel, ReplicaModel


def begin_action(
    engine: Engine,
    *,
    service: str,
    kind: str,
    reason: str,
    now: datetime,
    plan_id: int | None = None,
    replica_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    with transaction(engine) as session:
        if plan_id is None and replica_id is not None:
            plan_id = session.get_one(ReplicaModel, replica_id).plan_id
        action = ActionModel(
            created_at=now,
            service=service,
            plan_id=plan_id,
            replica_id=replica_id,
            kind=kind,
            status="pending",
            reason=reason,
            details=details or {},
        )
        session.add(action)
        session.flush()
        return action.id


def finish_action(
    engine: Engine,
    action_id: int,
    *,
    now: datetime,
    status: str = "done",
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    with transaction(engine) as session:
        action = session.get_one(ActionModel, action_id)
        action.status = status
        action.error = error
        action.finished_at = now
        if details:
            action.details = {**action.details, **details}


def live_fleet(engine: Engine, service: str) -> list[FleetReplica]:
    with transaction(engine) as session:
        rows = session.scalars(
            sa.select(ReplicaModel)
            .where(ReplicaModel.service == service, ReplicaModel.state.in_(LIVE_STATES))
            .order_by(ReplicaModel.id)
        ).all()
        return [
            FleetReplica(
                replica_id=row.id,
                pool=Pool(row.region, row.zone, row.instance_type, row.market),
                state=row.state,
                instance_id=row.instance_id,
            )
            for row in rows
        ]


def set_replica(engine: Engine, replica_id: int, **values: Any) -> None:
    """Write ``values`` onto one replica in one transaction; a ``state`` among them is checked
    against the allowed transitions (:class:`scheduler.models.IllegalTransitionError`)."""
    with transaction(engine) as session:
        replica = session.get_one(ReplicaModel, replica_id)
        if "state" in values:
            replica.move_to(values.pop("state"))
        for key, value in values.items():
            setattr(replica, key, value)
