"""Prometheus metrics, read from the database at scrape time (so every worker agrees)."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.models import (
    LIVE_STATES,
    ActionModel,
    EventModel,
    JobRunModel,
    ReplicaModel,
)
from scheduler.plan_store import latest_applied_query


def registry_for(engine: Engine, service: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_ServiceCollector(engine, service))
    return registry


class _ServiceCollector(Collector):
    def __init__(self, engine: Engine, service: str) -> None:
        self._engine = engine
        self._service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        service = self._service
        with transaction(self._engine) as session:
            applied = session.scalars(latest_applied_query(service)).first()
            cost = applied.cost_usd_per_hour if applied else None
            fleet = session.execute(
                sa.select(ReplicaModel.market, ReplicaModel.state, sa.func.count())
                .where(ReplicaModel.service == service, ReplicaModel.state.in_(LIVE_STATES))
                .group_by(ReplicaModel.market, ReplicaModel.state)
            ).all()
            events = session.execute(
                sa.select(EventModel.kind, sa.func.count()).group_by(EventModel.kind)
            ).all()
            actions = session.execute(
                sa.select(ActionModel.kind, ActionModel.status, sa.func.count())
                .where(ActionModel.service == service)
                .group_by(ActionModel.kind, ActionModel.status)
            ).all()
            jobs = session.execute(
                sa.select(JobRunModel.job, JobRunModel.status, sa.func.count()).group_by(
                    JobRunModel.job, JobRunModel.status
                )
            ).all()
        plan_cost = GaugeMetricFamily(
            "scheduler_plan_cost_usd_per_hour", "Cost of the applied plan", labels=["service"]
        )
        plan_cost.add_metric([service], float(cost or 0.0))
        yield plan_cost
        size = GaugeMetricFamily(
            "scheduler_fleet_replicas", "Live replicas", labels=["service", "market", "state"]
        )
        for market, state, count in fleet:
            size.add_metric([service, market, state], count)
        yield size
        interruptions = CounterMetricFamily(
            "scheduler_ec2_events", "EC2 events received, by kind", labels=["kind"]
        )
        for kind, count in events:
            interruptions.add_metric([kind], count)
        yield interruptions
        done = CounterMetricFamily(
            "scheduler_actions",
            "Actuator actions, by kind and status",
            labels=["service", "kind", "status"],
        )
        for kind, status, count in actions:
            done.add_metric([service, kind, status], count)
        yield done
        runs = CounterMetricFamily("scheduler_job_runs", "Job runs", labels=["job", "status"])
        for job, status, count in jobs:
            runs.add_metric([job, status], count)
        yield runs
