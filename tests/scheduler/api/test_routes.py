"""The HTTP API: auth on every mutating endpoint, JSON errors, plans applied, events handled."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.executor import Actuator
from scheduler.api.app import create_app
from scheduler.api.context import ApiContext
from scheduler.api.routers.recommendations import accepts_gzip
from scheduler.config import ServiceConfig, Settings
from scheduler.models import ActionModel, EventModel, PlanModel, ReplicaModel
from scheduler.services.recommendations import (
    Recommendation,
    RecommendationCache,
    make_recommendation,
)
from tests.scheduler.fleet_helpers import allocation, interruption, running_by_pool
from tests.scheduler.hold_apply_lock import apply_lock_held_elsewhere

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    service = settings.service.model_copy(update={"api_token": TOKEN})
    return settings.model_copy(update={"service": service})


@pytest.fixture
def client(
    engine: Engine, api_settings: Settings, make_actuator: Callable[..., Actuator]
) -> Iterator[TestClient]:
    calls: list[tuple[float, str]] = []

    def recommend(slo: float, model: str) -> Recommendation:
        calls.append((slo, model))
        return make_recommendation(
            {"slo_tokens_per_second": slo, "model": model, "allocations": []}
        )

    context = ApiContext(
        engine=engine,
        settings=api_settings,
        actuator_factory=lambda: make_actuator(engine, settings=api_settings),
        recommendations=RecommendationCache(engine, recommend, ttl_s=60),
        extras={"calls": calls},
    )
    with TestClient(create_app(context)) as test_client:
        yield test_client


@pytest.fixture
def light_client(engine: Engine) -> Iterator[TestClient]:
    """The API without AWS behind it: for requests that must be refused before any action."""
    settings = Settings(service=ServiceConfig(name="llm-test", api_token=TOKEN))

    def no_actuator() -> Actuator:
        raise AssertionError("a refused request reached the actuator")

    def no_plan(slo: float, model: str) -> Recommendation:
        raise AssertionError("a refused request reached the planner")

    context = ApiContext(
        engine=engine,
        settings=settings,
        actuator_factory=no_actuator,
        recommendations=RecommendationCache(engine, no_plan, ttl_s=60),
    )
    with TestClient(create_app(context)) as test_client:
        yield test_client


def _counts(engine: Engine) -> tuple[int, ...]:
    with transaction(engine) as session:
        return tuple(
            session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
            for model in (PlanModel, ReplicaModel, ActionModel, EventModel)
        )


def _plan_body(network: dict[str, Any]) -> dict[str, Any]:
    zones = network["zones"]
    rows = [allocation(zones[0], 1).to_dict(), allocation(zones[1], 1).to_dict()]
    return {"slo": "500tok/s", "allocations": rows}


MUTATING = [
    ("post", "/plans", {"slo": "500tok/s", "allocations": []}),
    ("post", "/plans/1/apply", {"dry_run": True}),
    ("post", "/events/ec2", interruption("i-0123456789abcdef0")),
]


@pytest.mark.parametrize(("method", "path", "body"), MUTATING)
def test_mutating_endpoints_refuse_requests_without_the_token(
    light_client: TestClient, engine: Engine, method: str, path: str, body: dict[str, Any]
) -> None:
    before = _counts(engine)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        response = light_client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert _counts(engine) == before


def test_without_a_configured_token_nothing_can_change(
    light_client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = light_client
    context = client.app.state.context  # type: ignore[attr-defined]
    service = context.settings.service.model_copy(update={"api_token": ""})
    context.settings = context.settings.model_copy(update={"service": service})
    response = client.post("/plans", json={"slo": "1tok/s", "allocations": []}, headers=AUTH)
    assert response.status_code == 403 and response.json()["code"] == "token_not_configured"
    monkeypatch.setenv("SCHEDULER_API_TOKEN", "from-env")
    ok = client.post(
        "/plans",
        json={"slo": "1tok/s", "allocations": []},
        headers={"Authorization": "Bearer from-env"},
    )
    assert ok.status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("post", "/plans", {"slo": "fast"}, "fast"),
        ("post", "/plans", {}, "slo"),
        ("post", "/plans", {"slo": "500tok/s", "colour": "red"}, "colour"),
        ("post", "/plans", {"slo": "500tok/s", "markets": "cheap"}, "markets"),
        (
            "post",
            "/plans",
            {
                "slo": "500tok/s",
                "allocations": [
                    {"region": "us-east-1", "instance_type": "x", "market": "spot", "count": -1}
                ],
            },
            "count",
        ),
        ("post", "/plans/abc/apply", {}, "plan_id"),
        ("post", "/plans/1/apply", {"dry_run": "maybe"}, "dry_run"),
        ("post", "/events/ec2", {"detail-type": "Nope"}, "detail-type"),
        ("post", "/events/ec2", [1, 2], "body"),
        ("get", "/recommendations?slo=lots", None, "lots"),
        ("get", "/recommendations", None, "slo"),
        ("get", "/plans/0", None, "plan_id"),
        ("get", "/actions?limit=0", None, "limit"),
    ],
)
def test_bad_bodies_and_parameters_get_422_json_and_change_nothing(
    light_client: TestClient,
    engine: Engine,
    method: str,
    path: str,
    body: Any,
    where: str,
) -> None:
    before = _counts(engine)
    response = light_client.request(method, path, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert set(payload) == {"code", "message"} and payload["code"] == "invalid_request"
    assert where in payload["message"]
    assert _counts(engine) == before


def test_plan_apply_fleet_and_actions(
    client: TestClient, engine: Engine, aws: Callable[..., Any], network: dict[str, Any]
) -> None:
    created = client.post("/plans", json=_plan_body(network), headers=AUTH)
    assert created.status_code == 201
    plan = created.json()
    assert plan["cost_usd_per_hour"] == pytest.approx(1.0)
    assert client.get(f"/plans/{plan['id']}").json() == plan
    assert client.get("/plans/999").status_code == 404

    dry = client.post(f"/plans/{plan['id']}/apply", json={"dry_run": True}, headers=AUTH)
    assert dry.json()["status"] == "planned" and len(dry.json()["actions"]) == 2
    assert running_by_pool(aws) == {}

    applied = client.post(f"/plans/{plan['id']}/apply", headers=AUTH)
    assert applied.status_code == 200 and applied.json()["status"] == "accepted"
    fleet = client.get("/fleet").json()
    assert sorted(r["state"] for r in fleet) == ["READY", "READY"]
    assert all(r["launched_at"] and r["price_usd_per_hour"] == 0.5 for r in fleet)
    actions = client.get("/actions", params={"plan_id": plan["id"]}).json()
    assert {(a["kind"], a["status"]) for a in actions} == {("launch", "done"), ("register", "done")}
    assert all(a["reason"] for a in actions)

    metrics = client.get("/metrics").text
    assert 'scheduler_fleet_replicas{market="spot",service="llm-test",state="READY"} 2.0' in (
        metrics
    )
    assert "scheduler_plan_cost_usd_per_hour" in metrics

    victim = fleet[0]["instance_id"]
    event = client.post("/events/ec2", json=interruption(victim), headers=AUTH)
    assert event.status_code == 200
    assert len(event.json()["result"]["launched"]) == 1
    assert client.post("/events/ec2", json=interruption(victim), headers=AUTH).json()["duplicate"]
    states = {r["instance_id"]: r["state"] for r in client.get("/fleet").json()}
    assert states[victim] == "TERMINATING" and len(states) == 3


def test_recommendations_are_cached_with_an_etag(client: TestClient) -> None:
    first = client.get("/recommendations", params={"slo": "1.5k tok/s"})
    assert first.status_code == 200 and first.json()["slo_tokens_per_second"] == 1500.0
    etag = first.headers["ETag"]
    again = client.get(
        "/recommendations", params={"slo": "1500tok/s"}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304
    calls = client.app.state.context.extras["calls"]  # type: ignore[attr-defined]
    assert len(calls) == 1


def test_recommendations_are_sent_gzipped_to_clients_that_accept_it(client: TestClient) -> None:
    identity = client.get(
        "/recommendations", params={"slo": "700tok/s"}, headers={"Accept-Encoding": "identity"}
    )
    assert "Content-Encoding" not in identity.headers
    assert identity.headers["Vary"] == "Accept-Encoding"
    with client.stream(
        "GET", "/recommendations", params={"slo": "700tok/s"}, headers={"Accept-Encoding": "gzip"}
    ) as compressed:
        raw = b"".join(compressed.iter_raw())
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw) == identity.content  # the same document, compressed
    assert compressed.headers["ETag"] != identity.headers["ETag"]  # a representation each
    refused = client.get(
        "/recommendations",
        params={"slo": "700tok/s"},
        headers={"Accept-Encoding": "gzip;q=0, identity"},
    )
    assert "Content-Encoding" not in refused.headers
    for etag in (identity.headers["ETag"], compressed.headers["ETag"]):
        unchanged = client.get(
            "/recommendations",
            params={"slo": "700tok/s"},
            headers={"If-None-Match": f'"other", {etag}', "Accept-Encoding": "gzip"},
        )
        assert (
            unchanged.status_code == 304 and unchanged.headers["ETag"] == compressed.headers["ETag"]
        )
    calls = client.app.state.context.extras["calls"]  # type: ignore[attr-defined]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, *", False),  # named beats the wildcard
        ("*", True),
        ("*;q=0", False),
        ("*;q=0, gzip", True),
        ("br, x-gzip", True),
        ("gzip;q=nope", False),
    ],
)
def test_accept_encoding_is_read_as_rfc_9110_says(header: str | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


def test_health_readiness_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    document = client.get("/openapi.json").json()
    assert {
        "/recommendations",
        "/plans",
        "/plans/{plan_id}",
        "/plans/{plan_id}/apply",
        "/actions",
        "/fleet",
        "/events/ec2",
        "/prices",
        "/benchmarks",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(document["paths"])
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_private_reads_need_the_token(light_client: TestClient) -> None:
    client = light_client
    context = client.app.state.context  # type: ignore[attr-defined]
    service = context.settings.service.model_copy(update={"private_reads": True})
    context.settings = context.settings.model_copy(update={"service": service})
    assert client.get("/fleet").status_code == 401
    assert client.get("/fleet", headers=AUTH).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_one_apply_at_a_time(
    client: TestClient, engine: Engine, aws: Callable[..., Any], network: dict[str, Any]
) -> None:
    plan = client.post("/plans", json=_plan_body(network), headers=AUTH).json()
    context = client.app.state.context  # type: ignore[attr-defined]
    url = engine.url.render_as_string(hide_password=False)
    # Another process (a `scheduler apply`, another API, a rebalance) holds the lock.
    with apply_lock_held_elsewhere(url, context.service):
        busy = client.post(f"/plans/{plan['id']}/apply", headers=AUTH)
    assert busy.status_code == 409 and busy.json()["code"] == "apply_in_progress"
    assert "another apply is running" in busy.json()["message"]
    assert running_by_pool(aws) == {}
    assert client.post(f"/plans/{plan['id']}/apply", headers=AUTH).status_code == 200
    free = context.apply_lock()  # the finished apply released it
    assert free.try_acquire()
    free.release()
    assert sum(running_by_pool(aws).values()) == 2


def test_apply_without_an_ami_is_refused_before_anything_happens(
    light_client: TestClient, engine: Engine
) -> None:
    plan = light_client.post(
        "/plans", json={"slo": "1tok/s", "allocations": []}, headers=AUTH
    ).json()
    before = _counts(engine)
    response = light_client.post(f"/plans/{plan['id']}/apply", headers=AUTH)
    assert response.status_code == 422
    assert "service.spec.image_id" in response.json()["message"]
    assert _counts(engine) == before
