"""The HTML pages under /ui (left out of the OpenAPI schema: the JSON they show is in it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from oracle.db import transaction
from oracle.errors import InputError, OracleError
from scheduler.api.auth import ContextDep
from scheduler.api.context import ApiContext
from scheduler.errors import SchedulerError
from scheduler.plan_store import latest_applied_plan
from scheduler.services import fleet as fleet_service
from scheduler.slo import parse_slo
from scheduler.ui import access, charts, reports
from scheduler.ui.api import (
    DEFAULT_POLICIES,
    RunBacktestRequest,
    market_of,
    start_backtest,
)
from scheduler.ui.first_use import FirstUse
from scheduler.ui.lineage import planner_document
from scheduler.ui.market import market_choices
from scheduler.ui.render import HERE, page
from scheduler.ui.savings import savings
from scheduler.ui.schedule import next_rebalance
from scheduler.ui.timeline import interruptions

router = APIRouter(prefix="/ui", include_in_schema=False)
STATIC = {
    "ui.css": (HERE / "static" / "ui.css", "text/css"),
    "ui.js": (HERE / "static" / "ui.js", "text/javascript"),
}
#: Pools shown in the market explorer's ranking.
RANKED_POOLS = 20
#: Journal entries shown on the fleet page.
JOURNAL_ROWS = 20


@router.get("")
@router.get("/fleet")
async def fleet_page(request: Request, context: ContextDep) -> Response:
    return await _guarded(request, context, "fleet.html", _fleet_values)


@router.get("/savings")
async def savings_page(request: Request, context: ContextDep) -> Response:
    return await _guarded(request, context, "savings.html", _savings_values)


@router.get("/market")
async def market_page(
    request: Request,
    context: ContextDep,
    region: Annotated[str | None, Query(max_length=32)] = None,
    instance_type: Annotated[str | None, Query(max_length=64)] = None,
    zone: Annotated[str | None, Query(max_length=32)] = None,
    days: Annotated[int, Query(ge=1, le=90)] = 90,
) -> Response:
    build = functools.partial(
        _market_values, region=region, instance_type=instance_type, zone=zone, days=days
    )
    return await _guarded(request, context, "market.html", build)


@router.get("/interruptions")
async def interruptions_page(
    request: Request, context: ContextDep, days: Annotated[int, Query(ge=1, le=365)] = 90
) -> Response:
    build = functools.partial(_interruptions_values, days=days)
    return await _guarded(request, context, "interruptions.html", build)


@router.get("/backtests")
async def backtests_page(request: Request, context: ContextDep) -> Response:
    return await _guarded(request, context, "backtests.html", _backtests_values)


@router.post("/backtests")
async def run_backtest_form(
    request: Request, context: ContextDep, background: BackgroundTasks
) -> Response:
    """The report form: the token is a field of the form, checked on every run."""
    form = parse_qs((await request.body()).decode(errors="replace"))

    def field(name: str, default: str = "") -> str:
        return form.get(name, [default])[0].strip()

    if not context.api_token:
        return await _backtests_page(
            request,
            context,
            403,
            "no API token is configured: set service.api_token or SCHEDULER_API_TOKEN",
        )
    if not access.token_matches(context, field("token")):
        return await _backtests_page(request, context, 401, "wrong or missing API token")
    try:
        run = RunBacktestRequest(
            slo=field("slo"),
            days=int(field("days", "7") or 7),
            policies=form.get("policies") or list(DEFAULT_POLICIES),
            tick_s=float(field("tick_s", "3600") or 3600),
        )
        name = start_backtest(context, run, background)
    except (ValueError, InputError) as error:
        message = str(error).splitlines()[0]
        return await _backtests_page(request, context, 422, message)
    return RedirectResponse(f"/ui/backtests?started={quote(name)}", status_code=303)


@router.get("/reports/{name}/{file}")
async def report_file(request: Request, context: ContextDep, name: str, file: str) -> Response:
    try:
        access.check_read(request, context)
    except access.SignInRequired as needed:
        return _sign_in(request, needed)
    path = reports.report_file(reports.reports_dir(context.settings), name, file)
    if path is None:
        return page(
            request,
            "message.html",
            404,
            title="Not found",
            message=f"no file {file} in report {name}",
        )
    return FileResponse(path)


@router.post("/signin")
async def sign_in(request: Request, context: ContextDep) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = form.get("token", [""])[0]
    target = form.get("next", ["/ui"])[0]
    if not target.startswith("/ui") or target.startswith("//"):
        target = "/ui"
    if not access.token_matches(context, token):
        return _sign_in(request, access.SignInRequired(wrong=True), target)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        access.COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/ui",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/static/plotly.min.js")
async def plotly_js() -> Response:
    return FileResponse(_plotly_path(), media_type="text/javascript", headers=_CACHE)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    path, media_type = STATIC[name]
    return FileResponse(path, media_type=media_type, headers=_CACHE)


# --- the pages' values ------------------------------------------------------------------

Values = dict[str, Any]


def _fleet_values(context: ApiContext) -> Values:
    service = context.service
    replicas = [r.to_dict() for r in fleet_service.list_replicas(context.engine, service=service)]
    actions = [
        a.to_dict()
        for a in fleet_service.list_actions(context.engine, service=service, limit=JOURNAL_ROWS)
    ]
    applied = latest_applied_plan(context.engine, service)
    recommended, error, slo = _recommendation(context, applied)
    plan_cost: float | None
    if applied is not None:
        with transaction(context.engine) as session:
            document = planner_document(session, applied.document)
        allocations = list(applied.allocations)
        plan_cost = applied.cost_usd_per_hour
    else:
        document = recommended
        allocations = list((recommended or {}).get("allocations", ()))
        plan_cost = recommended["cost_usd_per_hour"] if recommended else None
    return {
        "replicas": replicas,
        "ready": sum(1 for r in replicas if r["state"] == "READY"),
        "cost_now_usd_per_hour": sum(r["price_usd_per_hour"] for r in replicas),
        "actions": actions,
        "applied": applied,
        "plan_cost_usd_per_hour": plan_cost,
        "allocations": allocations,
        "recommended": recommended,
        "recommendation_error": error,
        "slo": slo,
        "document": document,
        "baselines_figure": charts.plan_against_baselines(document) if document else None,
        "rebalance": next_rebalance(context.engine, context.settings),
        "sample": _document_is_sample(document) or _document_is_sample(recommended),
    }


def _savings_values(context: ApiContext) -> Values:
    figures = savings(context.engine, service=context.service)
    applied = latest_applied_plan(context.engine, context.service)
    recommended, error, slo = _recommendation(context, applied)
    points = figures["points"]
    return {
        "savings": figures,
        "rates_figure": charts.savings_rates(points) if points else None,
        "cumulative_figure": charts.savings_cumulative(points) if points else None,
        "recommended": recommended,
        "recommendation_error": error,
        "slo": slo,
        "baselines_figure": charts.plan_against_baselines(recommended) if recommended else None,
        "sample": figures["sample"] or _document_is_sample(recommended),
    }


def _market_values(
    context: ApiContext,
    *,
    region: str | None,
    instance_type: str | None,
    zone: str | None,
    days: int,
) -> Values:
    choices = market_choices(context.engine)
    recommended, error, slo = _recommendation(context, None)
    spot = [a for a in (recommended or {}).get("allocations", ()) if a["market"] == "spot"]
    region = region or (spot[0]["region"] if spot else _first(choices["regions"]))
    instance_type = instance_type or (
        spot[0]["instance_type"] if spot else _first(choices["instance_types"])
    )
    if not region or not instance_type:
        return {"choices": choices, "market": None, "recommendation_error": error, "slo": slo}
    market = market_of(context, region=region, instance_type=instance_type, zone=zone, days=days)
    ranked = _ranked_pools(recommended, region)
    return {
        "choices": choices,
        "market": market,
        "region": region,
        "instance_type": instance_type,
        "zone": zone or "",
        "days": days,
        "zones": [s["zone"] for s in market["spot"]] if not zone else [zone],
        "price_figure": charts.spot_prices(market),
        "placement_figure": charts.placement_scores(market) if market["placement_scores"] else None,
        "advisor_figure": charts.advisor_bands(market) if market["advisor"] else None,
        "hazard_figure": charts.hazard(market["hazard"]) if market["hazard"] else None,
        "ranked": ranked,
        "ranking_figure": charts.pool_ranking(ranked) if ranked else None,
        "recommended": recommended,
        "recommendation_error": error,
        "slo": slo,
        "sample": market["sample"] or _document_is_sample(recommended),
    }


def _interruptions_values(context: ApiContext, *, days: int) -> Values:
    timeline = interruptions(context.engine, days=days)
    return {
        "timeline": timeline,
        "days": days,
        "figure": charts.timeline(
            timeline["events"],
            start=timeline["as_of"] - timedelta(days=days),
            end=timeline["as_of"],
        )
        if timeline["events"]
        else None,
        "sample": timeline["sample"],
    }


def _backtests_values(context: ApiContext) -> Values:
    directory = reports.reports_dir(context.settings)
    return {
        "reports": reports.list_reports(directory),
        "directory": str(directory),
        "token_configured": bool(context.api_token),
        "policy_names": _policy_names(),
        "default_policies": DEFAULT_POLICIES,
        "slo": _default_slo(context, latest_applied_plan(context.engine, context.service)),
        "sample": False,
    }


# --- helpers ----------------------------------------------------------------------------

_CACHE = {"Cache-Control": "public, max-age=86400"}


async def _guarded(
    request: Request,
    context: ApiContext,
    template: str,
    build: Callable[[ApiContext], Values],
    status: int = 200,
    **extra: Any,
) -> Response:
    """The page, or the sign-in form when the token is needed, or the loading page while an
    empty oracle is being filled with the sample market."""
    try:
        access.check_read(request, context)
    except access.SignInRequired as needed:
        return _sign_in(request, needed)
    model = context.settings.service.spec.model or context.settings.planner.model
    first_use: FirstUse = context.extras.setdefault("first_use", FirstUse())
    if first_use.loading(context.engine, context.settings, model):
        return page(
            request, "loading.html", 200, title="Loading the sample market", nav=_nav(request)
        )
    values = await run_in_threadpool(build, context)
    values.setdefault("first_use_error", first_use.error)
    return page(
        request,
        template,
        status,
        nav=_nav(request),
        now=datetime.now(UTC),
        service=context.service,
        **values,
        **extra,
    )


async def _backtests_page(
    request: Request, context: ApiContext, status: int, error: str
) -> Response:
    return await _guarded(
        request, context, "backtests.html", _backtests_values, status, form_error=error
    )


def _sign_in(
    request: Request, needed: access.SignInRequired, target: str | None = None
) -> Response:
    target = target or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return page(
        request, "signin.html", 401, title="Sign in", next=target, wrong=needed.wrong, nav=[]
    )


def _recommendation(
    context: ApiContext, applied: Any
) -> tuple[dict[str, Any] | None, str | None, str]:
    """The planner's plan now for the dashboard's SLO, through the cache GET /recommendations
    uses (so the figures are the same), or the error that stops it; and the SLO asked."""
    slo = _default_slo(context, applied)
    model = context.settings.service.spec.model or context.settings.planner.model
    try:
        tokens_per_second = parse_slo(slo)
        made = context.recommendations.get(tokens_per_second, model)
    except (InputError, OracleError, SchedulerError) as error:  # shown on the page
        return None, str(error).splitlines()[0], slo
    return made.document, None, slo


def _default_slo(context: ApiContext, applied: Any) -> str:
    if applied is not None:
        return f"{applied.slo_tokens_per_second:g}tok/s"
    service = context.settings.service
    return service.slo or service.dashboard_slo


def _ranked_pools(document: dict[str, Any] | None, region: str) -> list[dict[str, Any]]:
    """The region's candidate pools of the recommended plan, cheapest per 1k tok/s first."""
    rows = []
    for candidate in (document or {}).get("candidates", ()):
        if candidate["region"] != region or not candidate["tokens_per_second_each"]:
            continue
        where = candidate["availability_zone"] or candidate["region"]
        rows.append(
            {
                **candidate,
                "label": f"{candidate['instance_type']} {candidate['market']} {where}",
                "usd_per_hour_per_1k_tokens_per_second": candidate[
                    "expected_cost_usd_per_hour_each"
                ]
                / candidate["tokens_per_second_each"]
                * 1000.0,
            }
        )
    rows.sort(key=lambda r: (r["usd_per_hour_per_1k_tokens_per_second"], r["label"]))
    return rows[:RANKED_POOLS]


def _document_is_sample(document: dict[str, Any] | None) -> bool:
    return any("sample" in age.get("sources", ()) for age in (document or {}).get("data", ()))


def _nav(request: Request) -> list[tuple[str, str, bool]]:
    path = request.url.path.rstrip("/")
    items = [
        ("Fleet", "/ui/fleet"),
        ("Savings", "/ui/savings"),
        ("Market", "/ui/market"),
        ("Interruptions", "/ui/interruptions"),
        ("Backtests", "/ui/backtests"),
    ]
    return [
        (label, href, path == href or (href == "/ui/fleet" and path == "/ui"))
        for label, href in items
    ]


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _policy_names() -> tuple[str, ...]:
    from scheduler.config import POLICY_NAMES

    return POLICY_NAMES


@functools.cache
def _plotly_path() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
