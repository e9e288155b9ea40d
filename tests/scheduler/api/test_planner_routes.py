"""The API over the real planner and the oracle: POST /plans, /recommendations, /prices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from scheduler.actuator.executor import Actuator
from scheduler.api.app import create_app
from scheduler.api.context import ApiContext
from scheduler.config import PlannerConfig, ServiceConfig, Settings
from scheduler.services.recommendations import RecommendationCache
from scheduler.services.wiring import recommend
from tests.scheduler.market import MODEL, seed_market

ZONES = [("us-east-1a", "use1-az6"), ("us-east-1b", "use1-az1"), ("us-east-1c", "use1-az2")]
AUTH = {"Authorization": "Bearer k"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    seed_market(
        engine,
        ZONES,
        {
            ("use1-az6", "g5.xlarge"): 0.30,
            ("use1-az1", "g5.xlarge"): 0.35,
            ("use1-az2", "g6.xlarge"): 0.25,
        },
    )
    settings = Settings(
        planner=PlannerConfig(model=MODEL), service=ServiceConfig(name="llm-test", api_token="k")
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
    with TestClient(create_app(context)) as test_client:
        yield test_client


def test_plans_and_recommendations_come_from_the_planner(client: TestClient) -> None:
    created = client.post("/plans", json={"slo": "600tok/s"}, headers=AUTH)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["model"] == MODEL and plan["origin"] == "api"
    assert sum(a["count"] * a["tokens_per_second_each"] for a in plan["allocations"]) >= 600
    assert plan["document"]["slo_tokens_per_second"] == 600.0
    assert "baselines" in plan["document"]

    recommended = client.get("/recommendations", params={"slo": "600 tok/s"})
    assert recommended.status_code == 200
    assert recommended.json()["allocations"] == plan["document"]["allocations"]

    infeasible = client.post(
        "/plans",
        json={"slo": "600tok/s", "markets": "on-demand", "model": "no/such-model"},
        headers=AUTH,
    )
    assert infeasible.status_code == 409 and infeasible.json()["code"] == "infeasible"


def test_oracle_views(client: TestClient) -> None:
    prices = client.get("/prices", params={"instance_type": "g5.xlarge"}).json()
    assert {p["zone"] for p in prices} == {"use1-az6", "use1-az1"}
    assert all(p["instance_type"] == "g5.xlarge" for p in prices)
    benchmarks = client.get("/benchmarks", params={"model": MODEL}).json()
    assert {b["instance_type"]: b["goodput_tokens_per_second"] for b in benchmarks} == {
        "g5.xlarge": 400.0,
        "g6.xlarge": 300.0,
    }
