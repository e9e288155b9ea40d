"""Cron rebalancing: replan with the running fleet, act only when it is worth the churn.

A rebalance asks the planner for a plan with the running fleet's switching cost and compares
expected costs: the plan's ``cost_usd_per_hour`` (prices, expected interruptions, switching)
against the running fleet priced the same way the planner prices pools (the configured spot
estimator capped at on-demand, plus expected interruptions). It acts when the saving clears
both thresholds (percent and $/h), or when the SLO itself moved (load following). No replica
younger than the minimum dwell time is moved, and the launches plus terminations of one run
are capped. The decision becomes a :class:`~scheduler.actuator.command.Command` that the one
executor runs: make-before-break, and a termination happens only if the fleet still meets the
SLO without the replica.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator import journal
from scheduler.actuator.apply_lock import apply_in_progress_message, apply_lock
from scheduler.actuator.command import Command
from scheduler.actuator.diff import diff
from scheduler.actuator.executor import Actuator, ApplyResult
from scheduler.actuator.types import Action, FleetReplica
from scheduler.config import JobsConfig, Settings
from scheduler.models import ReplicaModel
from scheduler.plan_store import latest_applied_plan
from scheduler.planning.rebalance_rule import RebalanceRule, RuleDecision, decide_rebalance


class RebalanceDecision(RuleDecision[Action]):
    """The shared rule's decision on the actuator's actions, as the API and the job report it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "act": self.act,
            "reason": self.reason,
            "current_usd_per_hour": self.current_usd_per_hour,
            "planned_usd_per_hour": self.planned_usd_per_hour,
            "saving_usd_per_hour": self.saving_usd_per_hour,
            "saving_pct": self.saving_pct,
            "launches": [a.to_dict() for a in self.launches],
            "terminations": [a.to_dict() for a in self.terminations],
        }


def decide(
    config: JobsConfig,
    *,
    actions: Sequence[Action],
    current_usd_per_hour: float,
    planned_usd_per_hour: float,
    launched_at: dict[int, datetime | None],
    now: datetime,
    slo_changed: bool = False,
) -> RebalanceDecision:
    """Whether to act, and which actions: :func:`decide_rebalance` on the actuator's actions."""
    terminations: list[tuple[Action, float | None]] = []
    for action in actions:
        if action.kind != "terminate":
            continue
        if action.replica_id is None:
            terminations.append((action, -math.inf))  # no replica to end: never movable
            continue
        started = launched_at.get(action.replica_id)
        terminations.append((action, None if started is None else (now - started).total_seconds()))
    rule = decide_rebalance(
        RebalanceRule(
            min_saving_usd_per_hour=config.rebalance_min_saving_usd_per_hour,
            min_saving_pct=config.rebalance_min_saving_pct,
            min_dwell_s=config.rebalance_min_dwell_s,
            max_actions=config.rebalance_max_actions,
        ),
        launches=[a for a in actions if a.kind == "launch"],
        terminations=terminations,
        current_usd_per_hour=current_usd_per_hour,
        planned_usd_per_hour=planned_usd_per_hour,
        slo_changed=slo_changed,
    )
    return RebalanceDecision(**{f.name: getattr(rule, f.name) for f in fields(rule)})


@dataclass
class RebalanceReport:
    """What one rebalance run decided and did (``to_dict`` for the job's record and JSON)."""

    act: bool
    reason: str
    plan_id: int | None = None
    decision: RebalanceDecision | None = None
    result: ApplyResult | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.decision is None:
            return {"act": self.act, "reason": self.reason}
        out: dict[str, Any] = {"plan_id": self.plan_id, **self.decision.to_dict()}
        if self.result is not None:
            out["result"] = self.result.to_dict()
        return out


def rebalance(
    actuator: Actuator,
    *,
    now: datetime,
    slo_tokens_per_second: float | None = None,
) -> RebalanceReport:
    """One rebalance run; returns the decision and what was done. It holds the service's apply
    lock throughout, and skips the run while another process applies a plan."""
    lock = apply_lock(actuator.engine, actuator.service)
    if not lock.try_acquire():
        return RebalanceReport(act=False, reason=apply_in_progress_message(actuator.service))
    try:
        return _rebalance(actuator, now=now, slo_tokens_per_second=slo_tokens_per_second)
    finally:
        lock.release()


def _rebalance(
    actuator: Actuator, *, now: datetime, slo_tokens_per_second: float | None
) -> RebalanceReport:
    from scheduler.services.planning import plan_and_store

    engine, settings = actuator.engine, actuator.settings
    applied = latest_applied_plan(engine, actuator.service)
    if applied is None:
        return RebalanceReport(act=False, reason="no applied plan to rebalance")
    slo = slo_tokens_per_second or applied.slo_tokens_per_second
    fleet = journal.live_fleet(engine, actuator.service)
    plan_id, plan = plan_and_store(
        engine,
        settings,
        slo_tokens_per_second=slo,
        origin="rebalance",
        model=applied.model,
        running=fleet,
        as_of=now,
    )
    allocations = actuator.plan_allocations(plan_id)
    decision = decide(
        settings.jobs,
        actions=diff(fleet, allocations),
        current_usd_per_hour=fleet_cost(engine, settings, fleet, now=now, model=applied.model),
        # Expected cost: prices, expected interruptions and the switching cost of new replicas.
        planned_usd_per_hour=plan.cost_usd_per_hour,
        launched_at=_launched_at(engine, fleet),
        now=now,
        slo_changed=abs(slo - applied.slo_tokens_per_second) > 1e-9,
    )
    report = RebalanceReport(decision.act, decision.reason, plan_id=plan_id, decision=decision)
    if decision.act:
        report.result = actuator.execute(rebalance_command(plan_id, decision, slo))
    return report


def fleet_cost(
    engine: Engine,
    settings: Settings,
    fleet: Sequence[FleetReplica],
    *,
    now: datetime,
    model: str,
) -> float:
    """The running fleet's expected cost now, priced as the planner prices pools.

    Each replica costs its pool's price estimate (spot: the configured estimator, capped at
    on-demand) plus the pool's expected interruption cost, the terms of the plan's
    ``cost_usd_per_hour``; a running replica has no switching cost. A pool the planner no
    longer prices (no data, filtered out) counts at the price recorded at launch.
    """
    from scheduler.planning.candidates import build_candidates
    from scheduler.planning.load import load_planning_data

    if not fleet:
        return 0.0
    config = settings.planner.model_copy(update={"markets": "any"})
    data = load_planning_data(engine, config=config, model=model, as_of=now)
    # A pool marked unavailable after a capacity error still bills what runs in it.
    candidates = build_candidates(dataclasses.replace(data, unavailable=()), config).candidates
    expected: dict[tuple[str, str, str, str], float] = {}
    for candidate in candidates:
        key_pool = candidate.pool
        zones = {key_pool.zone, candidate.availability_zone, candidate.availability_zone_id}
        for zone in zones - {None}:
            key = (key_pool.region, str(zone), key_pool.instance_type, key_pool.market)
            expected[key] = candidate.expected_cost_usd_per_hour
    with transaction(engine) as session:
        recorded = dict(
            session.execute(
                sa.select(ReplicaModel.id, ReplicaModel.price_usd_per_hour).where(
                    ReplicaModel.id.in_([r.replica_id for r in fleet])
                )
            ).all()
        )
    total = 0.0
    for replica in fleet:
        pool = replica.pool
        known = expected.get((pool.region, pool.zone, pool.instance_type, pool.market))
        total += known if known is not None else float(recorded.get(replica.replica_id) or 0.0)
    return total


def _launched_at(engine: Engine, fleet: Sequence[FleetReplica]) -> dict[int, datetime | None]:
    with transaction(engine) as session:
        return dict(
            session.execute(
                sa.select(ReplicaModel.id, ReplicaModel.launched_at).where(
                    ReplicaModel.id.in_([r.replica_id for r in fleet])
                )
            ).all()
        )


def rebalance_command(plan_id: int, decision: RebalanceDecision, slo: float) -> Command:
    """The command that carries out a rebalance decision, keeping ``slo`` tok/s served."""
    return Command(
        plan_id=plan_id,
        reason="rebalance",
        launches=tuple(decision.launches),
        terminations=tuple(decision.terminations),
        slo_tokens_per_second=slo,
    )
