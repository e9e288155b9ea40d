"""The JSON behind the dashboard's pages: GET /savings, /market, /interruptions, /backtests and
POST /backtests (token required). Thin: each calls one service function."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel, ConfigDict, Field

from oracle.errors import InputError
from scheduler.api.auth import ContextDep, ReadAuth, WriteAuth
from scheduler.api.context import ApiContext
from scheduler.api.schemas import ErrorResponse
from scheduler.config import POLICY_NAMES
from scheduler.slo import parse_slo
from scheduler.ui import reports
from scheduler.ui.market import market_history
from scheduler.ui.savings import savings
from scheduler.ui.timeline import interruptions

router = APIRouter(tags=["dashboard"])
#: Policies a backtest started from the dashboard replays unless told otherwise: the planner
#: against the simplest spot and on-demand policies (a few minutes' replay at most).
DEFAULT_POLICIES = ("planner", "on-demand", "cheapest-zone")


class RunBacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slo: str = Field(description="Throughput SLO, e.g. '500tok/s'", examples=["500tok/s"])
    days: int = Field(default=7, ge=1, le=90, description="Days of history to replay")
    policies: list[str] = Field(default=list(DEFAULT_POLICIES), min_length=1, max_length=10)
    tick_s: float = Field(default=3600.0, ge=60.0, le=86_400.0, description="Decision interval")


class BacktestStarted(BaseModel):
    name: str
    status: str


@router.get(
    "/savings",
    summary="Fleet cost against the all-on-demand baseline, over time",
    dependencies=[ReadAuth],
)
def get_savings(context: ContextDep) -> dict[str, Any]:
    return savings(context.engine, service=context.service)


@router.get(
    "/market",
    summary="One pool family's prices, scores and bands over time",
    dependencies=[ReadAuth],
)
def get_market(
    context: ContextDep,
    region: Annotated[str, Query(min_length=1, max_length=32)],
    instance_type: Annotated[str, Query(min_length=1, max_length=64)],
    zone: Annotated[str | None, Query(max_length=32)] = None,
    days: Annotated[int, Query(ge=1, le=90)] = 90,
) -> dict[str, Any]:
    return market_of(context, region=region, instance_type=instance_type, zone=zone, days=days)


@router.get(
    "/interruptions",
    summary="Interruption notices, rebalance signals and capacity errors per pool",
    dependencies=[ReadAuth],
)
def get_interruptions(
    context: ContextDep, days: Annotated[int, Query(ge=1, le=365)] = 90
) -> dict[str, Any]:
    return interruptions(context.engine, days=days)


@router.get("/backtests", summary="Backtest reports written", dependencies=[ReadAuth])
def get_backtests(context: ContextDep) -> list[dict[str, Any]]:
    return reports.list_reports(reports.reports_dir(context.settings))


@router.post(
    "/backtests",
    status_code=202,
    summary="Replay the last days of history and write a report (runs after the response)",
    dependencies=[WriteAuth],
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def post_backtest(
    context: ContextDep, request: RunBacktestRequest, background: BackgroundTasks
) -> BacktestStarted:
    name = start_backtest(context, request, background)
    return BacktestStarted(name=name, status="running")


def market_of(
    context: ApiContext, *, region: str, instance_type: str, zone: str | None, days: int
) -> dict[str, Any]:
    oracle = context.settings.oracle
    return market_history(
        context.engine,
        region=region,
        instance_type=instance_type,
        zone=zone or None,
        days=days,
        product_description=oracle.product_description,
        operating_system=oracle.operating_system,
    )


def start_backtest(
    context: ApiContext, request: RunBacktestRequest, background: BackgroundTasks
) -> str:
    """Check the request, make the report's directory and queue the replay; its name."""
    slo_tokens_per_second = parse_slo(request.slo)
    unknown = [name for name in request.policies if name not in POLICY_NAMES]
    if unknown:
        raise InputError(
            f"policies: unknown policy {unknown[0]!r}; choose from {', '.join(POLICY_NAMES)}"
        )
    directory = reports.reports_dir(context.settings)
    name = reports.start_report(directory, now=datetime.now(UTC))
    background.add_task(
        reports.run_report,
        context.engine,
        context.settings,
        directory,
        name,
        slo_tokens_per_second=slo_tokens_per_second,
        days=request.days,
        policies=list(request.policies),
        tick_s=request.tick_s,
    )
    return name
