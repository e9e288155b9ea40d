"""Reconcile the journal with EC2 by tag: adopt, forget, or terminate what does not match.

Runs on start and on a schedule. A crash between a launch and its record leaves a PENDING
replica whose client token is tagged on a live instance: it is adopted, never launched again.
A PENDING replica older than ``grace_s`` with no instance never reached EC2: it is FAILED, and
the next apply launches afresh. A live instance tagged with this service that no live replica
owns is an orphan and is terminated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from oracle.db import transaction
from scheduler.actuator import journal
from scheduler.actuator.ec2 import InstanceInfo
from scheduler.actuator.executor import Actuator
from scheduler.models import FINAL_STATES, ActionModel, ReplicaModel, ReplicaState

ALIVE = ("pending", "running", "stopping", "stopped")


@dataclass
class ReconcileReport:
    adopted: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    orphans_terminated: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[int] | list[str]]:
        return {
            "adopted": self.adopted,
            "failed": self.failed,
            "gone": self.gone,
            "orphans_terminated": self.orphans_terminated,
        }


def reconcile(actuator: Actuator, *, grace_s: float = 120.0) -> ReconcileReport:
    report = ReconcileReport()
    engine, service = actuator.engine, actuator.service
    with transaction(engine) as session:
        regions = set(
            session.scalars(
                sa.select(ReplicaModel.region).where(ReplicaModel.service == service).distinct()
            )
        )
        rows = [
            (r.id, r.instance_id, r.client_token, r.state, r.created_at, r.state_reason)
            for r in session.scalars(
                sa.select(ReplicaModel).where(
                    ReplicaModel.service == service, ReplicaModel.state.not_in(FINAL_STATES)
                )
            )
        ]
    instances = actuator.ec2.describe_managed(regions) if regions else []
    alive = [i for i in instances if i.state in ALIVE]
    by_token = {i.client_token: i for i in alive if i.client_token}
    by_id = {i.instance_id: i for i in instances}
    now = actuator.clock()
    owned: set[str] = set()
    for replica_id, instance_id, token, state, created_at, reason in rows:
        if instance_id is None:
            found = by_token.get(token)
            if found is not None:
                _adopt(actuator, replica_id, found)
                owned.add(found.instance_id)
                report.adopted.append(replica_id)
            elif now - created_at >= timedelta(seconds=grace_s):
                journal.set_replica(
                    engine,
                    replica_id,
                    state=ReplicaState.FAILED,
                    state_reason="launch never reached EC2",
                )
                _close_pending(actuator, replica_id, "failed", "launch never reached EC2")
                report.failed.append(replica_id)
            continue
        info = by_id.get(instance_id)
        if info is None or info.state not in ALIVE:
            final = (
                ReplicaState.PREEMPTED
                if info and "Spot" in info.state_reason
                else ReplicaState.TERMINATED
            )
            journal.set_replica(
                engine, replica_id, state=final, terminated_at=now, target_registered=False
            )
            report.gone.append(replica_id)
            continue
        owned.add(instance_id)
        if state == ReplicaState.TERMINATING:  # a retire (or an interrupted spot replica) to finish
            final = ReplicaState.PREEMPTED if "interruption" in reason else ReplicaState.TERMINATED
            actuator.retire(replica_id, reason=f"finishing: {reason}", final=final)
    orphans = [i for i in alive if i.instance_id not in owned]
    for info in orphans:
        action_id = journal.begin_action(
            engine,
            service=service,
            kind="terminate",
            reason="orphan: tagged with the service but owned by no live replica",
            now=now,
            details={"instance_id": info.instance_id},
        )
        actuator.ec2.terminate(info.region, [info.instance_id])
        journal.finish_action(engine, action_id, now=actuator.clock())
        report.orphans_terminated.append(info.instance_id)
    return report


def _adopt(actuator: Actuator, replica_id: int, info: InstanceInfo) -> None:
    journal.set_replica(
        actuator.engine,
        replica_id,
        state=ReplicaState.PROVISIONING,
        instance_id=info.instance_id,
        launched_at=info.launch_time or actuator.clock(),
    )
    _close_pending(actuator, replica_id, "done", f"adopted {info.instance_id} by its tag")


def _close_pending(actuator: Actuator, replica_id: int, status: str, note: str) -> None:
    with transaction(actuator.engine) as session:
        for action in session.scalars(
            sa.select(ActionModel).where(
                ActionModel.replica_id == replica_id,
                ActionModel.kind == "launch",
                ActionModel.status == "pending",
            )
        ):
            action.status = status
            action.finished_at = actuator.clock()
            action.details = {**action.details, "reconcile": note}
