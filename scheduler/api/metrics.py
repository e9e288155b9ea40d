"""Prometheus metrics. The service's state is read from the database at scrape time (so every
worker agrees); request latency is timed in the process that serves the request.

Series (``deploy/grafana`` and ``deploy/prometheus/alerts.yml`` use them; a test holds that
every series they name is exposed here):

- ``scheduler_plan_cost_usd_per_hour{service}``, ``scheduler_plan_replicas{service}``,
  ``scheduler_plan_tokens_per_second{service}``, ``scheduler_slo_tokens_per_second{service}``:
  the applied plan (its cost at list prices, instances, capacity and SLO);
- ``scheduler_fleet_replicas{service,market,state}`` and
  ``scheduler_fleet_ready_tokens_per_second{service}``: what runs and what it can serve;
- ``scheduler_fleet_cost_usd_per_hour{service,market}``: the hourly prices of live replicas;
- ``scheduler_ec2_events_total{kind}``, ``scheduler_interruptions_total{kind}`` (per pool kind
  of loss: interruption, rebalance) and ``scheduler_capacity_errors_total{market}``;
- ``scheduler_actions_total{service,kind,status}`` and
  ``scheduler_actions_oldest_pending_timestamp_seconds{service}`` (0 when none is pending);
- ``scheduler_job_runs_total{job,status}`` and
  ``scheduler_job_last_run_timestamp_seconds{job,status}``;
- ``scheduler_oracle_last_ingest_timestamp_seconds{kind,source}`` (the last successful ingest
  of each kind of fact);
- ``scheduler_http_request_duration_seconds{method,route,status}`` (a histogram).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import CapacityErrorModel, IngestRunModel, InterruptionEventModel
from scheduler.models import (
    LIVE_STATES,
    ActionModel,
    EventModel,
    JobRunModel,
    ReplicaModel,
)
from scheduler.plan_store import latest_applied_query

#: Latency buckets in seconds: a cached GET /recommendations answers in about a millisecond,
#: a cold plan in seconds.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def registry_for(engine: Engine, service: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_ServiceCollector(engine, service))
    return registry


def instrument(app: Any, context: Any) -> None:
    """Time every HTTP request of ``app`` into the registry ``/metrics`` serves (kept in
    ``context.extras["registry"]``, where the metrics route looks first)."""
    registry = registry_for(context.engine, context.service)
    histogram = Histogram(
        "scheduler_http_request_duration_seconds",
        "Time to answer an HTTP request, by method, route template and status class",
        ["method", "route", "status"],
        registry=registry,
        buckets=LATENCY_BUCKETS_S,
    )
    context.extras["registry"] = registry
    app.add_middleware(RequestTimer, histogram=histogram)


class RequestTimer:
    """A plain ASGI middleware (no per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: Any, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_and_note(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The route's template (/plans/{plan_id}), not the path: a bounded set of labels.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.histogram.labels(scope["method"], route, f"{status[0] // 100}xx").observe(
                time.perf_counter() - started
            )


class _ServiceCollector(Collector):
    def __init__(self, engine: Engine, service: str) -> None:
        self._engine = engine
        self._service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        service = self._service
        with transaction(self._engine) as session:
            plan = session.scalars(latest_applied_query(service)).first()
            fleet = session.execute(
                sa.select(
                    ReplicaModel.market,
                    ReplicaModel.state,
                    sa.func.count(),
                    sa.func.sum(ReplicaModel.price_usd_per_hour),
                    sa.func.sum(ReplicaModel.tokens_per_second),
                )
                .where(ReplicaModel.service == service, ReplicaModel.state.in_(LIVE_STATES))
                .group_by(ReplicaModel.market, ReplicaModel.state)
            ).all()
            events = session.execute(
                sa.select(EventModel.kind, sa.func.count()).group_by(EventModel.kind)
            ).all()
            losses = session.execute(
                sa.select(InterruptionEventModel.kind, sa.func.count()).group_by(
                    InterruptionEventModel.kind
                )
            ).all()
            capacity = session.execute(
                sa.select(CapacityErrorModel.market, sa.func.count()).group_by(
                    CapacityErrorModel.market
                )
            ).all()
            actions = session.execute(
                sa.select(ActionModel.kind, ActionModel.status, sa.func.count())
                .where(ActionModel.service == service)
                .group_by(ActionModel.kind, ActionModel.status)
            ).all()
            oldest_pending = session.scalar(
                sa.select(sa.func.min(ActionModel.created_at)).where(
                    ActionModel.service == service, ActionModel.status == "pending"
                )
            )
            jobs = session.execute(
                sa.select(
                    JobRunModel.job,
                    JobRunModel.status,
                    sa.func.count(),
                    sa.func.max(JobRunModel.started_at),
                ).group_by(JobRunModel.job, JobRunModel.status)
            ).all()
            ingests = session.execute(
                sa.select(
                    IngestRunModel.kind,
                    IngestRunModel.source,
                    sa.func.max(IngestRunModel.started_at),
                )
                .where(IngestRunModel.status == "ok")
                .group_by(IngestRunModel.kind, IngestRunModel.source)
            ).all()
        yield from _plan_families(service, plan)
        yield from _fleet_families(service, fleet)
        yield _counter(
            "scheduler_ec2_events",
            "EC2 events received, by kind",
            ["kind"],
            [([kind], count) for kind, count in events],
        )
        yield _counter(
            "scheduler_interruptions",
            "Spot capacity lost (interruption notices, rebalance signals) recorded per kind",
            ["kind"],
            [([kind], count) for kind, count in losses],
        )
        yield _counter(
            "scheduler_capacity_errors",
            "Pools marked unavailable after a capacity error (InsufficientInstanceCapacity...)",
            ["market"],
            [([market], count) for market, count in capacity],
        )
        yield _counter(
            "scheduler_actions",
            "Actuator actions, by kind and status",
            ["service", "kind", "status"],
            [([service, kind, status], count) for kind, status, count in actions],
        )
        pending = GaugeMetricFamily(
            "scheduler_actions_oldest_pending_timestamp_seconds",
            "When the oldest pending actuator action was journalled (0: none pending)",
            labels=["service"],
        )
        pending.add_metric([service], oldest_pending.timestamp() if oldest_pending else 0.0)
        yield pending
        yield _counter(
            "scheduler_job_runs",
            "Job runs",
            ["job", "status"],
            [([job, status], count) for job, status, count, _ in jobs],
        )
        last_run = GaugeMetricFamily(
            "scheduler_job_last_run_timestamp_seconds",
            "When each job last started, by status",
            labels=["job", "status"],
        )
        for job, status, _, started_at in jobs:
            last_run.add_metric([job, status], started_at.timestamp())
        yield last_run
        ingest = GaugeMetricFamily(
            "scheduler_oracle_last_ingest_timestamp_seconds",
            "When each kind of fact was last ingested successfully, by source",
            labels=["kind", "source"],
        )
        for kind, source, started_at in ingests:
            ingest.add_metric([kind, source], started_at.timestamp())
        yield ingest


def _plan_families(service: str, plan: Any) -> Iterator[GaugeMetricFamily]:
    allocations = plan.allocations if plan is not None else []
    figures = (
        (
            "scheduler_plan_cost_usd_per_hour",
            "Cost of the applied plan at its prices",
            plan.cost_usd_per_hour if plan else 0.0,
        ),
        (
            "scheduler_plan_replicas",
            "Instances the applied plan wants",
            sum(int(a.get("count", 0)) for a in allocations),
        ),
        (
            "scheduler_plan_tokens_per_second",
            "Output tok/s the applied plan's instances carry",
            sum(
                int(a.get("count", 0)) * float(a.get("tokens_per_second_each", 0.0))
                for a in allocations
            ),
        ),
        (
            "scheduler_slo_tokens_per_second",
            "Throughput SLO of the applied plan",
            plan.slo_tokens_per_second if plan else 0.0,
        ),
    )
    for name, documentation, value in figures:
        family = GaugeMetricFamily(name, documentation, labels=["service"])
        family.add_metric([service], float(value))
        yield family


def _fleet_families(service: str, fleet: Any) -> Iterator[GaugeMetricFamily]:
    size = GaugeMetricFamily(
        "scheduler_fleet_replicas", "Live replicas", labels=["service", "market", "state"]
    )
    cost = GaugeMetricFamily(
        "scheduler_fleet_cost_usd_per_hour",
        "Hourly prices of the live replicas, by market",
        labels=["service", "market"],
    )
    ready = GaugeMetricFamily(
        "scheduler_fleet_ready_tokens_per_second",
        "Output tok/s the READY replicas can serve (their goodput)",
        labels=["service"],
    )
    by_market: dict[str, float] = {}
    ready_tokens_per_second = 0.0
    for market, state, count, price, tokens in fleet:
        size.add_metric([service, market, state], count)
        by_market[market] = by_market.get(market, 0.0) + float(price or 0.0)
        if state == "READY":
            ready_tokens_per_second += float(tokens or 0.0)
    for market, price in sorted(by_market.items()):
        cost.add_metric([service, market], price)
    ready.add_metric([service], ready_tokens_per_second)
    yield size
    yield cost
    yield ready


def _counter(
    name: str, documentation: str, labels: list[str], samples: list[tuple[list[str], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in samples:
        family.add_metric(values, count)
    return family
