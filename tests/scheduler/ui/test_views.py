"""The queries behind the dashboard, on SQLite and PostgreSQL: savings, the market explorer's
history, the interruption timeline; and who may see and do what over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from oracle.capacity import mark_unavailable
from oracle.db import transaction
from oracle.models import (
    InterruptionEventModel,
    InterruptionFrequencyModel,
    PlacementScoreModel,
)
from oracle.observations import record_observation
from oracle.risk import advisor_prior
from scheduler.actuator.executor import Actuator
from scheduler.api.app import create_app
from scheduler.api.context import ApiContext
from scheduler.config import PlannerConfig, ServiceConfig, Settings
from scheduler.models import PlanModel, ReplicaModel
from scheduler.services.recommendations import RecommendationCache
from scheduler.services.wiring import recommend
from scheduler.ui.market import market_history
from scheduler.ui.savings import savings
from scheduler.ui.timeline import interruptions
from tests.scheduler.market import MODEL, REGION, seed_market, set_spot_price

T0 = datetime(2026, 11, 20, tzinfo=UTC)
ZONES = [("us-east-1a", "use1-az6"), ("us-east-1b", "use1-az1")]
HOUR = timedelta(hours=1)


def test_savings_integrate_the_billed_instances_against_the_baseline_in_force(
    engine: Engine,
) -> None:
    """Plan 1 (all on-demand would cost $2/h) is applied at T0, its fallback at T0+1h (whose
    baseline is plan 1's). Replica A ($0.50/h) bills T0..T0+2h, B ($0.30/h) T0+1h..now=T0+3h:
    the fleet cost 0.5 x 2 + 0.3 x 2 = $1.60 against 2 x 3 = $6.00 all on-demand."""
    with transaction(engine) as session:
        first = _plan(session, T0, {"cost_usd_per_hour": 0.5, "baselines": _on_demand(2.0)})
        session.flush()
        _plan(session, T0 + HOUR, {"fallback_of": first.id, "reason": "interruption"})
        _replica(session, "a", 0.5, T0, T0 + 2 * HOUR)
        _replica(session, "b", 0.3, T0 + HOUR, None)
        _replica(session, "c", 9.0, T0 + 4 * HOUR, None)  # launched after now: not billed yet
    figures = savings(engine, service="llm-ui", now=T0 + 3 * HOUR)
    assert figures["actual_usd"] == pytest.approx(1.6)
    assert figures["on_demand_usd"] == pytest.approx(6.0)
    assert figures["saving_usd"] == pytest.approx(4.4)
    assert figures["saving_pct"] == pytest.approx(4.4 / 6.0 * 100)
    assert [p["on_demand_usd_per_hour"] for p in figures["plans"]] == [2.0, 2.0]
    rates = [(p["time"], p["actual_usd_per_hour"]) for p in figures["points"]]
    assert rates == [
        (T0, 0.5),
        (T0 + HOUR, pytest.approx(0.8)),
        (T0 + 2 * HOUR, 0.3),
        (T0 + 3 * HOUR, 0.3),
    ]
    assert figures["points"][-1]["cumulative_actual_usd"] == pytest.approx(1.6)


def test_market_history_opens_with_the_price_in_force_and_keeps_sources(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    seed_market(engine, ZONES, {("use1-az6", "g5.xlarge"): 0.30, ("use1-az1", "g5.xlarge"): 0.35})
    set_spot_price(engine, ZONES, "use1-az6", "g5.xlarge", 0.41, at=now - 2 * HOUR)
    with transaction(engine) as session:
        for types, score in (("g5.xlarge,g6.xlarge", 7), ("g6.xlarge", 3)):
            session.add(
                PlacementScoreModel(
                    region=REGION, scope="use1-az6", availability_zone_id="use1-az6",
                    instance_types=types, target_capacity=4, score=score,
                    source="aws", observed_at=now - HOUR,
                )
            )  # fmt: skip
        session.add(
            InterruptionFrequencyModel(
                region=REGION, instance_type="g5.xlarge", band_index=1, band_label="5-10%",
                band_max_pct=10.0, savings_pct=62.0, source="aws", observed_at=now - 3 * HOUR,
            )
        )  # fmt: skip
        # Two losses in use1-az1 three days ago, after a launch held six hours: its learned
        # hazard rises from the prior then, not before (no look-ahead); use1-az6 keeps the prior.
        for kind, count, at_risk_s in (("launch", 1, 6 * 3600.0), ("interruption", 2, 0.0)):
            record_observation(
                session, region=REGION, zone="use1-az1", instance_type="g5.xlarge",
                market="spot", kind=kind, count=count, at_risk_s=at_risk_s,
                observed_at=now - timedelta(days=3),
            )  # fmt: skip
    market = market_history(engine, region=REGION, instance_type="g5.xlarge", days=7, as_of=now)
    hazard = {s["zone"]: s for s in market["hazard"]}
    prior = advisor_prior(1).hazard_per_hour
    assert hazard["use1-az6"]["hazard_per_hour"][-1] == pytest.approx(prior)
    learned = hazard["use1-az1"]["hazard_per_hour"]
    # A week ago: nothing seen, and no Advisor band yet (the worst band's rate is the prior).
    assert learned[0] == pytest.approx(advisor_prior(None).hazard_per_hour)
    assert learned[-1] == pytest.approx((prior * 24 + 2) / (24 + 6))  # Gamma posterior mean
    assert hazard["use1-az1"]["source"].startswith("observed")
    by_zone = {s["zone"]: s for s in market["spot"]}
    az6 = by_zone["use1-az6"]
    # seed_market's price was set 8 days ago: it opens the 7-day window at its left edge.
    assert az6["times"][0] == now - timedelta(days=7)
    assert az6["prices_usd_per_hour"] == [0.30, 0.41, 0.41]
    assert az6["times"][-1] == now
    assert by_zone["use1-az1"]["prices_usd_per_hour"] == [0.35, 0.35]
    assert market["on_demand"]["price_usd_per_hour"] == 1.006
    (placement,) = market["placement_scores"]
    assert placement["scores"] == [7] and placement["source"] == "aws"
    assert [a["band_label"] for a in market["advisor"]] == ["5-10%"]
    assert market["sample"] is False
    only = market_history(
        engine, region=REGION, instance_type="g5.xlarge", zone="use1-az1", days=7, as_of=now
    )
    assert [s["zone"] for s in only["spot"]] == ["use1-az1"]


def test_timeline_lists_notices_and_capacity_errors_per_pool(engine: Engine) -> None:
    now = datetime.now(UTC)
    with transaction(engine) as session:
        for kind, hours, instance in (("interruption", 5, "i-1"), ("rebalance", 6, "i-2")):
            session.add(
                InterruptionEventModel(
                    region=REGION, zone="use1-az6", instance_type="g5.xlarge",
                    instance_id=instance, kind=kind, source="aws",
                    observed_at=now - timedelta(hours=hours),
                )
            )  # fmt: skip
        session.add(
            InterruptionEventModel(
                region=REGION, zone="use1-az6", instance_type="g5.xlarge", instance_id="i-old",
                kind="interruption", source="aws", observed_at=now - timedelta(days=40),
            )
        )  # fmt: skip
        mark_unavailable(
            session,
            region=REGION,
            zone="use1-az1",
            instance_type="g6.xlarge",
            market="spot",
            error_code="InsufficientInstanceCapacity",
            ttl_s=300,
            now=now - timedelta(hours=1),
        )
    timeline = interruptions(engine, days=30)
    assert [(e["kind"], e["detail"]) for e in timeline["events"]] == [
        ("rebalance", "i-2"),
        ("interruption", "i-1"),
        ("capacity-error", "InsufficientInstanceCapacity"),
    ]
    assert timeline["counts"] == {"interruption": 1, "rebalance": 1, "capacity-error": 1}
    assert timeline["pools"] == [
        "us-east-1/use1-az1/g6.xlarge/spot",
        "us-east-1/use1-az6/g5.xlarge/spot",
    ]


@pytest.fixture
def client_for(engine: Engine, tmp_path: Path) -> Iterator[object]:
    seed_market(engine, ZONES, {("use1-az6", "g5.xlarge"): 0.30})
    clients: list[TestClient] = []

    def make(*, token: str = "k", private_reads: bool = False) -> TestClient:
        settings = Settings(
            planner=PlannerConfig(model=MODEL),
            service=ServiceConfig(
                name="llm-ui",
                api_token=token,
                private_reads=private_reads,
                reports_dir=str(tmp_path / "reports"),
            ),
        )

        def no_actuator() -> Actuator:
            raise AssertionError("no AWS here")

        context = ApiContext(
            engine=engine,
            settings=settings,
            actuator_factory=no_actuator,
            recommendations=RecommendationCache(
                engine, lambda slo, model: recommend(engine, settings, slo, model), ttl_s=60
            ),
        )
        client = TestClient(create_app(context))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_private_reads_refuse_pages_and_json_without_the_token(client_for: object) -> None:
    client = client_for(private_reads=True)  # type: ignore[operator]
    for path in ("/ui", "/ui/savings", "/ui/market", "/ui/interruptions", "/ui/backtests"):
        refused = client.get(path)
        assert refused.status_code == 401 and 'name="token"' in refused.text, path
    for path in ("/savings", "/interruptions", "/backtests", "/market?region=x&instance_type=y"):
        assert client.get(path).json()["code"] == "unauthorized", path
    assert client.get("/ui/backtests", headers={"Authorization": "Bearer k"}).status_code == 200
    signed = client.post("/ui/signin", data={"token": "k", "next": "/ui/savings"},
                         follow_redirects=False)  # fmt: skip
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/savings"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert client.get("/ui/savings").status_code == 200  # the cookie now signs the reads
    # ... but never a mutation: the run form wants the token itself.
    run = client.post("/ui/backtests", data={"slo": "100tok/s", "days": "1"})
    assert run.status_code == 401 and "wrong or missing API token" in run.text
    assert client.get("/backtests", headers={"Authorization": "Bearer k"}).json() == []
    assert client.post("/backtests", json={"slo": "100tok/s"}).status_code == 401
    away = client.post("/ui/signin", data={"token": "k", "next": "https://evil.example/"},
                       follow_redirects=False)  # fmt: skip
    assert away.headers["location"] == "/ui"


def test_public_reads_and_no_run_form_without_a_configured_token(client_for: object) -> None:
    client = client_for(token="")  # type: ignore[operator]
    page = client.get("/ui/backtests")
    assert page.status_code == 200 and 'id="run-form"' not in page.text
    assert "none is configured" in page.text
    refused = client.post("/ui/backtests", data={"slo": "100tok/s", "token": ""})
    assert refused.status_code == 403
    assert client.post("/backtests", json={"slo": "100tok/s"}).json()["code"] == (
        "token_not_configured"
    )
    assert (
        client.get("/ui/static/plotly.min.js").headers["content-type"].startswith("text/javascript")
    )
    assert client.get("/ui/static/../pages.py").status_code == 404
    assert client.get("/ui/reports/..%2F..%2Fetc/passwd").status_code == 404
    bad = client.post("/backtests", json={"slo": "fast"}, headers={"Authorization": "Bearer x"})
    assert bad.status_code == 403  # no token configured: nothing is accepted


def test_a_bad_run_request_is_a_one_line_error_and_writes_nothing(
    client_for: object, tmp_path: Path
) -> None:
    client = client_for()  # type: ignore[operator]
    auth = {"Authorization": "Bearer k"}
    bad = client.post("/backtests", json={"slo": "fast"}, headers=auth)
    assert bad.status_code == 422 and "fast" in bad.json()["message"]
    unknown = client.post("/backtests", json={"slo": "1tok/s", "policies": ["x"]}, headers=auth)
    assert unknown.status_code == 422 and "unknown policy 'x'" in unknown.json()["message"]
    form = client.post("/ui/backtests", data={"slo": "fast", "token": "k"})
    assert form.status_code == 422 and 'id="form-error"' in form.text
    assert not (tmp_path / "reports").exists()


def test_the_fleet_page_shows_the_recommendation_before_any_plan_is_applied(
    client_for: object,
) -> None:
    client = client_for()  # type: ignore[operator]
    page = client.get("/ui")
    recommended = client.get("/recommendations", params={"slo": "500tok/s"}).json()
    assert page.status_code == 200
    assert f"${recommended['cost_usd_per_hour']:,.2f}/h" in page.text
    assert "recommended plan (not applied" in page.text
    assert 'id="sample-banner"' not in page.text  # the seeded market is not sample data


def _plan(session: object, applied_at: datetime, document: dict[str, object]) -> PlanModel:
    plan = PlanModel(
        created_at=applied_at, service="llm-ui", model="m", slo_tokens_per_second=100.0,
        origin="test", cost_usd_per_hour=0.5, allocations=[], document=document,
        applied_at=applied_at,
    )  # fmt: skip
    session.add(plan)  # type: ignore[attr-defined]
    return plan


def _on_demand(cost: float) -> dict[str, object]:
    return {"all_on_demand": {"cost_usd_per_hour": cost, "description": "all on-demand"}}


def _replica(
    session: object, token: str, price: float, launched: datetime, terminated: datetime | None
) -> None:
    session.add(  # type: ignore[attr-defined]
        ReplicaModel(
            service="llm-ui", region=REGION, zone="use1-az6", instance_type="g5.xlarge",
            market="spot", state="TERMINATED" if terminated else "READY", client_token=token,
            price_usd_per_hour=price, created_at=launched, launched_at=launched,
            terminated_at=terminated,
        )
    )  # fmt: skip


def test_an_empty_oracle_is_filled_once_while_the_page_says_so(
    engine: Engine, tmp_path: Path
) -> None:
    from oracle.reference import ensure_goodput_figures
    from oracle.sample import ingest_sample
    from scheduler.ui.first_use import FirstUse

    loads: list[str] = []
    release = threading.Event()

    def load(target: Engine, settings: Settings, model: str) -> list[str]:
        loads.append(model)
        release.wait(30)  # the page is asked for while the load runs
        ingest_sample(
            target, seed=1, regions=["us-east-1"], instance_types=["g5.2xlarge", "g6.xlarge"]
        )
        ensure_goodput_figures(target, model=model)
        return ["loaded"]

    settings = Settings(service=ServiceConfig(name="llm-ui", reports_dir=str(tmp_path)))
    context = ApiContext(
        engine=engine,
        settings=settings,
        actuator_factory=lambda: None,  # type: ignore[arg-type,return-value]
        recommendations=RecommendationCache(
            engine, lambda slo, model: recommend(engine, settings, slo, model), ttl_s=60
        ),
    )
    first_use = context.extras["first_use"] = FirstUse(load)
    with TestClient(create_app(context)) as client:
        for path in ("/ui", "/ui/market"):
            waiting = client.get(path)
            assert waiting.status_code == 200 and 'id="loading"' in waiting.text
            assert 'http-equiv="refresh"' in waiting.text
        release.set()
        deadline = time.monotonic() + 60
        while first_use.loading(engine, settings, "m") and time.monotonic() < deadline:
            time.sleep(0.05)
        page = client.get("/ui")
        assert first_use.error is None, first_use.error
        assert 'id="loading"' not in page.text, page.text[-1500:]
        assert 'id="sample-banner"' in page.text
        recommended = client.get("/recommendations", params={"slo": "500tok/s"}).json()
        assert f"${recommended['cost_usd_per_hour']:,.2f}/h" in page.text
    assert loads == [PlannerConfig().model]  # once, though asked for three times
