"""Tables of the scheduler service: stored plans, managed replicas, the action journal, events.

They share :data:`oracle.models.Base` (one metadata, one set of migrations). The journal rule:
an action row is committed *before* the AWS call it describes is sent, with the idempotency
token the call will carry, so a crash at any point can be reconciled by tag without orphans or
double launches.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Unicode,
)
from sqlalchemy.orm import Mapped, mapped_column

from oracle.models import Base


class ReplicaState(StrEnum):
    """A replica's state, in the order a healthy replica passes through them (then the bad
    ends). Stored as these strings, so the column needs no migration."""

    PENDING = "PENDING"  # journalled, launch request not yet confirmed
    PROVISIONING = "PROVISIONING"  # EC2 accepted the launch
    STARTING = "STARTING"  # instance running, vLLM not yet answering the readiness probe
    READY = "READY"
    NOT_READY = "NOT_READY"  # was ready, now fails the probe
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    PREEMPTED = "PREEMPTED"  # taken back by EC2 (spot interruption)
    FAILED = "FAILED"


_S = ReplicaState
#: Where a replica may go from each state; staying put is always allowed (an idempotent write).
#: A final state leads nowhere. Anything alive may end (terminated, or preempted by EC2) or be
#: retired (TERMINATING); a retire ends TERMINATED, PREEMPTED or, for a replica that never
#: became ready, FAILED.
TRANSITIONS: dict[ReplicaState, frozenset[ReplicaState]] = {
    _S.PENDING: frozenset({_S.PROVISIONING, _S.FAILED, _S.TERMINATING}),
    _S.PROVISIONING: frozenset(
        {_S.STARTING, _S.READY, _S.TERMINATING, _S.TERMINATED, _S.PREEMPTED}
    ),
    _S.STARTING: frozenset({_S.READY, _S.TERMINATING, _S.TERMINATED, _S.PREEMPTED}),
    _S.READY: frozenset({_S.NOT_READY, _S.TERMINATING, _S.TERMINATED, _S.PREEMPTED}),
    _S.NOT_READY: frozenset({_S.READY, _S.TERMINATING, _S.TERMINATED, _S.PREEMPTED}),
    _S.TERMINATING: frozenset({_S.TERMINATED, _S.PREEMPTED, _S.FAILED}),
    _S.TERMINATED: frozenset(),
    _S.PREEMPTED: frozenset(),
    _S.FAILED: frozenset(),
}
#: States in which a replica counts as part of the fleet (it serves or soon will).
LIVE_STATES = (_S.PENDING, _S.PROVISIONING, _S.STARTING, _S.READY, _S.NOT_READY)
#: States from which a replica never comes back.
FINAL_STATES = (_S.TERMINATED, _S.PREEMPTED, _S.FAILED)


class IllegalTransitionError(RuntimeError):
    """A replica was asked to move to a state its current state does not lead to."""


def check_transition(current: str, new: str) -> ReplicaState:
    """``new`` as a :class:`ReplicaState` when ``current`` may move to it; else raise
    :class:`IllegalTransitionError` naming both (a bug in the caller, not bad input)."""
    try:
        old_state, new_state = ReplicaState(current), ReplicaState(new)
    except ValueError:
        raise IllegalTransitionError(
            f"replica state {current!r} -> {new!r}: not a replica state; use one of "
            f"{', '.join(ReplicaState)}"
        ) from None
    if new_state != old_state and new_state not in TRANSITIONS[old_state]:
        allowed = ", ".join(sorted(TRANSITIONS[old_state])) or "nothing (it is final)"
        raise IllegalTransitionError(
            f"replica state {old_state} -> {new_state} is not allowed; {old_state} leads to "
            f"{allowed}"
        )
    return new_state


ACTION_KINDS = ("launch", "terminate", "register", "deregister")
ACTION_STATUSES = ("pending", "done", "failed", "skipped")


class PlanModel(Base):
    """A plan the planner made, stored so that it can be inspected and applied."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    service: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(256))
    slo_tokens_per_second: Mapped[float] = mapped_column(Double)
    #: Who asked: "api", "cli", "rebalance", "interruption", "fallback".
    origin: Mapped[str] = mapped_column(String(32))
    cost_usd_per_hour: Mapped[float] = mapped_column(Double)
    #: The target fleet: [{region, zone, availability_zone, instance_type, market, count, ...}].
    allocations: Mapped[list[Any]] = mapped_column(JSON)
    #: The planner's own JSON (``Plan.to_dict()``), shown as is by the API.
    document: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    applied_at: Mapped[datetime | None]


class ReplicaModel(Base):
    """One managed instance of the service (one vLLM server)."""

    __tablename__ = "replicas"
    __table_args__ = (Index("ix_replicas_service_state", "service", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))
    region: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(32))
    availability_zone: Mapped[str | None] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str] = mapped_column(String(512), default="")
    #: The EC2 idempotency token of the launch, also written as a tag on the instance.
    client_token: Mapped[str] = mapped_column(String(64), unique=True)
    instance_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    endpoint: Mapped[str | None] = mapped_column(String(256))
    price_usd_per_hour: Mapped[float] = mapped_column(Double, default=0.0)
    tokens_per_second: Mapped[float] = mapped_column(Double, default=0.0)
    target_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    launched_at: Mapped[datetime | None]
    ready_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]

    def move_to(self, state: str, *, reason: str | None = None) -> None:
        """Change the state, checked against :data:`TRANSITIONS`; ``reason`` replaces the
        state reason when given."""
        self.state = check_transition(self.state, state).value
        if reason is not None:
            self.state_reason = reason


class ActionModel(Base):
    """The journal: one row per AWS-side action, written before the call is sent."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    service: Mapped[str] = mapped_column(String(64), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))
    replica_id: Mapped[int | None] = mapped_column(ForeignKey("replicas.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    #: Why: "plan 4 wants 2 x g5.xlarge spot in use1-az4", "interruption of i-0abc", ...
    reason: Mapped[str] = mapped_column(Text, default="")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


class EventModel(Base):
    """An EC2 event received (EventBridge through the API or SQS), and what was done about it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The EventBridge event id; a redelivered event is recognised and not handled twice.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str | None] = mapped_column(String(32), index=True)
    region: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    handled_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobRunModel(Base):
    """One run of a scheduled job (price sync, reconcile, rebalance, ...)."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(32), index=True)
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Double, default=0.0)
    status: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class ApschedulerJobModel(Base):
    """APScheduler 3's job store table, declared here so that migrations own it (the store
    itself only creates it when missing; columns as in apscheduler.jobstores.sqlalchemy)."""

    __tablename__ = "apscheduler_jobs"

    id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)
