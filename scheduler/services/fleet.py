"""Read the fleet and the journal; take the whole service down.

The functions return dataclasses; the HTTP and command-line edges turn them into their own
shapes (``to_dict`` gives the plain JSON form).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.executor import Actuator
from scheduler.actuator.reconcile import reconcile
from scheduler.models import FINAL_STATES, ActionModel, ReplicaModel, ReplicaState
from scheduler.plan_store import latest_applied_plan


@dataclass(frozen=True)
class ReplicaView:
    """One managed replica as stored."""

    id: int
    service: str
    plan_id: int | None
    pool: str
    region: str
    zone: str
    availability_zone: str | None
    instance_type: str
    market: str
    state: str
    state_reason: str
    instance_id: str | None
    endpoint: str | None
    price_usd_per_hour: float
    tokens_per_second: float
    target_registered: bool
    created_at: datetime
    launched_at: datetime | None
    ready_at: datetime | None
    terminated_at: datetime | None

    @classmethod
    def from_model(cls, r: ReplicaModel) -> ReplicaView:
        return cls(
            id=r.id,
            service=r.service,
            plan_id=r.plan_id,
            pool=f"{r.region}/{r.zone}/{r.instance_type}/{r.market}",
            region=r.region,
            zone=r.zone,
            availability_zone=r.availability_zone,
            instance_type=r.instance_type,
            market=r.market,
            state=r.state,
            state_reason=r.state_reason,
            instance_id=r.instance_id,
            endpoint=r.endpoint,
            price_usd_per_hour=r.price_usd_per_hour,
            tokens_per_second=r.tokens_per_second,
            target_registered=r.target_registered,
            created_at=r.created_at,
            launched_at=r.launched_at,
            ready_at=r.ready_at,
            terminated_at=r.terminated_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ActionView:
    """One row of the actuator's journal."""

    id: int
    created_at: datetime
    plan_id: int | None
    replica_id: int | None
    kind: str
    status: str
    reason: str
    dry_run: bool
    details: dict[str, Any]
    error: str | None
    finished_at: datetime | None

    @classmethod
    def from_model(cls, a: ActionModel) -> ActionView:
        return cls(
            id=a.id,
            created_at=a.created_at,
            plan_id=a.plan_id,
            replica_id=a.replica_id,
            kind=a.kind,
            status=a.status,
            reason=a.reason,
            dry_run=a.dry_run,
            details=a.details,
            error=a.error,
            finished_at=a.finished_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AppliedPlan:
    id: int
    slo_tokens_per_second: float
    applied_at: datetime | None


@dataclass(frozen=True)
class ServiceSummary:
    """One line of `scheduler status`."""

    name: str
    #: READY when a replica serves, STARTING when replicas exist but none serves, NO_REPLICAS.
    status: str
    replicas_ready: int
    replicas: int
    price_usd_per_hour: float
    tokens_per_second: float
    uptime_s: float | None
    plan: AppliedPlan | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def list_replicas(
    engine: Engine, *, service: str, include_final: bool = False
) -> list[ReplicaView]:
    with transaction(engine) as session:
        query = sa.select(ReplicaModel).where(ReplicaModel.service == service)
        if not include_final:
            query = query.where(ReplicaModel.state.not_in(FINAL_STATES))
        return [ReplicaView.from_model(r) for r in session.scalars(query.order_by(ReplicaModel.id))]


def list_actions(
    engine: Engine, *, service: str, limit: int = 100, plan_id: int | None = None
) -> list[ActionView]:
    with transaction(engine) as session:
        query = sa.select(ActionModel).where(ActionModel.service == service)
        if plan_id is not None:
            query = query.where(ActionModel.plan_id == plan_id)
        rows = session.scalars(query.order_by(ActionModel.id.desc()).limit(limit))
        return [ActionView.from_model(a) for a in rows]


def service_summary(engine: Engine, *, service: str, now: datetime) -> ServiceSummary:
    """One line of `scheduler status`: replicas ready/total, cost, the applied plan."""
    replicas = list_replicas(engine, service=service)
    plan = latest_applied_plan(engine, service)
    ready = [r for r in replicas if r.state == ReplicaState.READY]
    first = min((r.launched_at for r in replicas if r.launched_at), default=None)
    return ServiceSummary(
        name=service,
        status="READY" if ready else ("STARTING" if replicas else "NO_REPLICAS"),
        replicas_ready=len(ready),
        replicas=len(replicas),
        price_usd_per_hour=sum(r.price_usd_per_hour for r in replicas),
        tokens_per_second=sum(r.tokens_per_second for r in ready),
        uptime_s=(now - first).total_seconds() if first else None,
        plan=AppliedPlan(plan.id, plan.slo_tokens_per_second, plan.applied_at) if plan else None,
    )


def take_down(actuator: Actuator, *, dry_run: bool = False) -> list[ReplicaView]:
    """Drain and terminate every replica the service owns, then sweep orphans by tag."""
    replicas = list_replicas(actuator.engine, service=actuator.service)
    if dry_run:
        return replicas
    for replica in replicas:
        actuator.retire(replica.id, reason="scheduler down")
    reconcile(actuator, grace_s=0)
    return replicas
