"""The one executor: runs a :class:`~scheduler.actuator.command.Command` against EC2, make
before break, every AWS call journalled in the database first.

``execute`` marks the command's plan applied, launches what it names, waits until the new
replicas pass the readiness probe, and only then drains and terminates (guarded by the SLO the
command keeps). A launch refused for capacity or quota marks the pool unavailable (in
:meth:`Actuator.launch`, the one place a capacity error is handled) and asks ``replan`` for a
new target without it (by default the same instance type and zone on-demand), up to
:data:`MAX_REPLANS` times; when the last replan's launches fail too, what they were to add is
bought on demand (:func:`~scheduler.planning.fallback.cover_on_demand`, with
``service.on_demand_fallback``). ``apply`` builds the command that makes the fleet match a plan.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.capacity import mark_unavailable
from oracle.db import transaction
from oracle.observations import record_launch
from scheduler.actuator import journal
from scheduler.actuator.alb import TargetGroup
from scheduler.actuator.command import Command
from scheduler.actuator.diff import diff
from scheduler.actuator.ec2 import (
    TAG_PLAN,
    TAG_POOL,
    TAG_REPLICA,
    TAG_SERVICE,
    TAG_TOKEN,
    CapacityError,
    Ec2Adapter,
    InstanceInfo,
    LaunchRequest,
)
from scheduler.actuator.fallback import ReplanRequest, on_demand_fallback
from scheduler.actuator.types import Action, TargetAllocation
from scheduler.config import Settings
from scheduler.models import FINAL_STATES, ReplicaModel, ReplicaState
from scheduler.plan_store import mark_applied, plan_allocations
from scheduler.planning.fallback import MAX_REPLANS

#: States in which a launched replica is probed until it is READY (or gone).
_PROBED_STATES = (
    ReplicaState.PROVISIONING,
    ReplicaState.STARTING,
    ReplicaState.READY,
    ReplicaState.NOT_READY,
)


#: Returns the id of a new stored plan, or None when no plan can be made.
Replanner = Callable[[ReplanRequest], "int | None"]


@dataclass
class ApplyResult:
    plan_id: int
    dry_run: bool
    actions: list[Action] = field(default_factory=list)
    launched: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)
    capacity_errors: list[str] = field(default_factory=list)
    #: Plans made on the way (capacity fallbacks), newest last.
    replans: list[int] = field(default_factory=list)
    #: A capacity replan found no plan without the failed pools.
    replan_failed: bool = False
    #: ``time.perf_counter()`` when the first launch request was accepted.
    first_launch_perf_s: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "plan_id": self.plan_id,
            "dry_run": self.dry_run,
            "actions": [action.to_dict() for action in self.actions],
            "launched": self.launched,
            "ready": self.ready,
            "failed": self.failed,
            "terminated": self.terminated,
            "capacity_errors": self.capacity_errors,
            "replans": self.replans,
        }


class Actuator:
    """Applies stored plans for one service; every AWS call is journalled first."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        ec2: Ec2Adapter,
        *,
        probe: Callable[[str], bool],
        target_group: TargetGroup | None = None,
        resolve_endpoint: Callable[[InstanceInfo], str] | None = None,
        replan: Replanner | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.service = settings.service.name
        self.ec2 = ec2
        self.probe = probe
        self.target_group = target_group
        self.resolve_endpoint = resolve_endpoint or self._endpoint_from_template
        self.replan = replan or self._on_demand_fallback
        self.clock = clock
        self.sleep = sleep

    # -- public -----------------------------------------------------------------------------

    def plan_actions(self, plan_id: int) -> list[Action]:
        """What ``apply`` would do now (nothing is written)."""
        return diff(journal.live_fleet(self.engine, self.service), self.plan_allocations(plan_id))

    def apply(self, plan_id: int, *, dry_run: bool = False, wait: bool = True) -> ApplyResult:
        """Make the fleet match the stored plan ``plan_id`` (``dry_run``: only say how)."""
        actions = self.plan_actions(plan_id)
        if dry_run:
            return ApplyResult(plan_id=plan_id, dry_run=True, actions=actions)
        return self.execute(apply_command(plan_id, actions, wait=wait))

    def execute(self, command: Command) -> ApplyResult:
        """Run one command: mark its plan applied, launch (replanning around capacity errors),
        wait until the new replicas are ready, then retire what the command retires."""
        result = ApplyResult(plan_id=command.plan_id, dry_run=False, actions=command.actions)
        mark_applied(self.engine, command.plan_id, now=self.clock())
        final_plan = self._launch_all(command, result)
        if not command.wait:
            return result
        self.wait_until_settled(result.launched, result)
        if result.failed:
            return result  # no break without the make: keep the old capacity
        terminations = command.terminations
        if command.match_plan:
            remaining = self.plan_actions(final_plan)
            if any(action.kind == "launch" for action in remaining):
                return result  # the target is not met: keep the old capacity (no break)
            terminations = tuple(a for a in remaining if a.kind == "terminate")
        for action in terminations:
            if action.replica_id is None:
                continue
            slo = command.slo_tokens_per_second
            if slo is not None and self.serving_tokens_per_second(without=action.replica_id) < slo:
                continue  # keep the SLO: this replica is still needed
            self.retire(
                action.replica_id, reason=command.journal_reason(action), plan_id=final_plan
            )
            result.terminated.append(action.replica_id)
        return result

    def launch(self, allocation: TargetAllocation, *, plan_id: int | None, reason: str) -> int:
        """Journal, then launch one replica into ``allocation.pool``; return the replica id.

        Raises :class:`CapacityError` after marking the replica FAILED and the pool unavailable.
        """
        pool = allocation.pool
        token = uuid.uuid4().hex
        now = self.clock()
        with transaction(self.engine) as session:
            replica = ReplicaModel(
                service=self.service,
                plan_id=plan_id,
                region=pool.region,
                zone=pool.zone,
                availability_zone=allocation.availability_zone,
                instance_type=pool.instance_type,
                market=pool.market,
                state=ReplicaState.PENDING.value,
                state_reason=reason,
                client_token=token,
                price_usd_per_hour=allocation.price_usd_per_hour_each,
                tokens_per_second=allocation.tokens_per_second_each,
                created_at=now,
            )
            session.add(replica)
            session.flush()
            replica_id = replica.id
        action_id = journal.begin_action(
            self.engine,
            service=self.service,
            kind="launch",
            reason=reason,
            now=now,
            plan_id=plan_id,
            replica_id=replica_id,
            details={"pool": pool.label, "client_token": token},
        )
        tags = {
            TAG_SERVICE: self.service,
            TAG_PLAN: str(plan_id or ""),
            TAG_POOL: pool.label,
            TAG_REPLICA: str(replica_id),
            TAG_TOKEN: token,
            "Name": f"{self.service}-{replica_id}",
        }
        request = LaunchRequest(
            pool, allocation.availability_zone, token, tags, allocation.availability_zone_id
        )
        try:
            instance_id = self.ec2.launch(request)
        except CapacityError as error:
            self._record_capacity_error(replica_id, action_id, error)
            raise
        except Exception as error:
            journal.set_replica(
                self.engine, replica_id, state=ReplicaState.FAILED, state_reason=str(error)
            )
            journal.finish_action(
                self.engine, action_id, now=self.clock(), status="failed", error=str(error)
            )
            raise
        record_launch(self.engine, pool, ok=True, observed_at=now, source_detail=instance_id)
        journal.set_replica(
            self.engine,
            replica_id,
            state=ReplicaState.PROVISIONING,
            instance_id=instance_id,
            launched_at=self.clock(),
        )
        journal.finish_action(
            self.engine, action_id, now=self.clock(), details={"instance_id": instance_id}
        )
        return replica_id

    def wait_until_settled(self, replica_ids: Sequence[int], result: ApplyResult) -> None:
        """Probe the new replicas until each is READY or FAILED (readiness timeout)."""
        spec = self.settings.service.spec
        deadline = time.monotonic() + spec.readiness_timeout_s
        pending = set(replica_ids)
        while pending:
            states = self.progress(pending)
            for replica_id, state in states.items():
                if state == ReplicaState.READY:
                    result.ready.append(replica_id)
                    pending.discard(replica_id)
                elif state in (*FINAL_STATES, ReplicaState.TERMINATING):
                    result.failed.append(replica_id)
                    pending.discard(replica_id)
            if not pending:
                return
            if time.monotonic() >= deadline:
                for replica_id in sorted(pending):
                    self.retire(
                        replica_id, reason="readiness probe timed out", final=ReplicaState.FAILED
                    )
                    result.failed.append(replica_id)
                return
            self.sleep(spec.readiness_interval_s)

    def progress(self, replica_ids: Collection[int] | None = None) -> dict[int, ReplicaState]:
        """One step for launched replicas: learn their address, probe them, register the ready.

        Returns the state of each replica looked at.
        """
        with transaction(self.engine) as session:
            query = sa.select(ReplicaModel).where(
                ReplicaModel.service == self.service,
                ReplicaModel.state.in_(_PROBED_STATES),
            )
            if replica_ids is not None:
                query = query.where(ReplicaModel.id.in_(list(replica_ids)))
            rows = [
                (r.id, r.region, r.instance_id, r.state, r.endpoint) for r in session.scalars(query)
            ]
        regions = {row[1] for row in rows}
        instances = {i.instance_id: i for i in self.ec2.describe_managed(regions)} if rows else {}
        states: dict[int, ReplicaState] = {}
        for replica_id, _region, instance_id, state, endpoint in rows:
            info = instances.get(instance_id or "")
            if info is None or info.state not in ("pending", "running"):
                final = (
                    ReplicaState.PREEMPTED
                    if info and "Spot" in info.state_reason
                    else ReplicaState.TERMINATED
                )
                journal.set_replica(
                    self.engine,
                    replica_id,
                    state=final,
                    terminated_at=self.clock(),
                    target_registered=False,
                )
                states[replica_id] = final
                continue
            if info.state == "pending":
                states[replica_id] = ReplicaState(state)
                continue
            endpoint = endpoint or self.resolve_endpoint(info)
            ready = self.probe(endpoint)
            new_state = _next_state(state, ready)
            values: dict[str, object] = {"endpoint": endpoint, "state": new_state}
            if new_state == ReplicaState.READY and state != ReplicaState.READY:
                values["ready_at"] = self.clock()
            journal.set_replica(self.engine, replica_id, **values)
            if new_state == ReplicaState.READY and state != ReplicaState.READY:
                self._register(replica_id, info.instance_id)
            states[replica_id] = new_state
        return states

    def retire(
        self,
        replica_id: int,
        *,
        reason: str,
        plan_id: int | None = None,
        final: ReplicaState = ReplicaState.TERMINATED,
        terminate: bool = True,
    ) -> None:
        """Drain (deregister, wait ``drain_s``) and terminate one replica."""
        with transaction(self.engine) as session:
            replica = session.get_one(ReplicaModel, replica_id)
            replica.move_to(ReplicaState.TERMINATING, reason=reason)
            instance_id, region = replica.instance_id, replica.region
            registered = replica.target_registered
        if registered and instance_id:
            self._deregister(replica_id, instance_id, reason)
            self.sleep(self.settings.service.drain_s)
        if not terminate:
            return
        if instance_id:
            action_id = journal.begin_action(
                self.engine,
                service=self.service,
                kind="terminate",
                reason=reason,
                now=self.clock(),
                plan_id=plan_id,
                replica_id=replica_id,
                details={"instance_id": instance_id},
            )
            self.ec2.terminate(region, [instance_id])
            journal.finish_action(self.engine, action_id, now=self.clock())
        journal.set_replica(self.engine, replica_id, state=final, terminated_at=self.clock())

    def deregister(self, replica_id: int, *, reason: str) -> bool:
        """Take a replica out of the load balancer now; True when it was registered."""
        with transaction(self.engine) as session:
            replica = session.get_one(ReplicaModel, replica_id)
            instance_id, registered = replica.instance_id, replica.target_registered
        if registered and instance_id:
            self._deregister(replica_id, instance_id, reason)
            return True
        return False

    # -- helpers ----------------------------------------------------------------------------

    def _launch_all(self, command: Command, result: ApplyResult) -> int:
        """Launch the command's launches; after capacity errors, replan without the failed
        pools and launch what the new plan lacks. Returns the plan the fleet follows now."""
        current = command.plan_id
        excluded = set(command.exclude_pools)
        launches = command.launches
        # MAX_REPLANS replans, then the on-demand cover of what the last one failed to launch.
        for _ in range(MAX_REPLANS + 2):
            failures: list[CapacityError] = []
            for action in launches:
                if action.kind != "launch" or action.allocation is None:
                    continue
                reason = command.journal_reason(action)
                try:
                    result.launched.append(
                        self.launch(action.allocation, plan_id=current, reason=reason)
                    )
                except CapacityError as error:
                    failures.append(error)
                    result.capacity_errors.append(str(error))
                    continue
                if result.first_launch_perf_s is None:
                    result.first_launch_perf_s = time.perf_counter()
            if not failures or len(result.replans) > MAX_REPLANS:
                return current
            excluded |= {error.pool for error in failures}
            fleet = [
                replica
                for replica in journal.live_fleet(self.engine, self.service)
                if replica.replica_id not in command.leaving
            ]
            request = ReplanRequest(
                current,
                frozenset(excluded),
                tuple(fleet),
                reason="; ".join(str(error) for error in failures),
            )
            if len(result.replans) < MAX_REPLANS:
                new_plan = self.replan(request)
                if new_plan is None:
                    result.replan_failed = True
                    return current
            else:
                # The replans are spent and spot still fails: cover the rest on demand.
                new_plan = self._on_demand_fallback(request)
                if new_plan is None:
                    return current
            result.replans.append(new_plan)
            mark_applied(self.engine, new_plan, now=self.clock())
            current = new_plan
            launches = tuple(
                a
                for a in diff(fleet, plan_allocations(self.engine, new_plan))
                if a.kind == "launch"
            )
        return current

    def _record_capacity_error(self, replica_id: int, action_id: int, error: CapacityError) -> None:
        now = self.clock()
        with transaction(self.engine) as session:
            replica = session.get_one(ReplicaModel, replica_id)
            replica.move_to(ReplicaState.FAILED, reason=str(error))
            mark_unavailable(
                session,
                region=error.pool.region,
                zone=error.pool.zone,
                instance_type=error.pool.instance_type,
                market=error.pool.market,
                ttl_s=self.settings.planner.unavailable_ttl_s,
                error_code=error.code,
                now=now,
                source_detail=f"launch of replica {replica_id}",
            )
            record_launch(
                session,
                error.pool,
                ok=False,
                observed_at=now,
                source_detail=f"replica {replica_id}",
            )
        journal.finish_action(self.engine, action_id, now=now, status="failed", error=str(error))

    def _register(self, replica_id: int, instance_id: str) -> None:
        if self.target_group is None:
            return
        action_id = journal.begin_action(
            self.engine,
            service=self.service,
            kind="register",
            reason="replica READY",
            now=self.clock(),
            replica_id=replica_id,
            details={"instance_id": instance_id},
        )
        self.target_group.register(instance_id)
        journal.set_replica(self.engine, replica_id, target_registered=True)
        journal.finish_action(self.engine, action_id, now=self.clock())

    def _deregister(self, replica_id: int, instance_id: str, reason: str) -> None:
        if self.target_group is None:
            return
        action_id = journal.begin_action(
            self.engine,
            service=self.service,
            kind="deregister",
            reason=reason,
            now=self.clock(),
            replica_id=replica_id,
            details={"instance_id": instance_id},
        )
        self.target_group.deregister(instance_id)
        journal.set_replica(self.engine, replica_id, target_registered=False)
        journal.finish_action(self.engine, action_id, now=self.clock())

    def plan_allocations(self, plan_id: int) -> list[TargetAllocation]:
        return plan_allocations(self.engine, plan_id)

    def serving_tokens_per_second(self, *, without: int | None = None) -> float:
        """What the READY replicas serve together, leaving out replica ``without``."""
        with transaction(self.engine) as session:
            query = sa.select(
                sa.func.coalesce(sa.func.sum(ReplicaModel.tokens_per_second), 0.0)
            ).where(ReplicaModel.service == self.service, ReplicaModel.state == ReplicaState.READY)
            if without is not None:
                query = query.where(ReplicaModel.id != without)
            return float(session.scalar(query) or 0.0)

    def _endpoint_from_template(self, info: InstanceInfo) -> str:
        spec = self.settings.service.spec
        return spec.endpoint_template.format(
            private_ip=info.private_ip or "", public_ip=info.public_ip or "", port=spec.port
        )

    def _on_demand_fallback(self, request: ReplanRequest) -> int | None:
        if not self.settings.service.on_demand_fallback:
            return None
        return on_demand_fallback(self.engine, request, now=self.clock())


def apply_command(plan_id: int, actions: Sequence[Action], *, wait: bool = True) -> Command:
    """The command that makes the fleet match plan ``plan_id`` (``actions``: the diff now)."""
    return Command(
        plan_id=plan_id,
        reason=f"apply plan {plan_id}",
        launches=tuple(a for a in actions if a.kind == "launch"),
        terminations=tuple(a for a in actions if a.kind == "terminate"),
        match_plan=True,
        wait=wait,
    )


def _next_state(state: str, ready: bool) -> ReplicaState:
    if ready:
        return ReplicaState.READY
    if state in (ReplicaState.READY, ReplicaState.NOT_READY):
        return ReplicaState.NOT_READY
    return ReplicaState.STARTING
