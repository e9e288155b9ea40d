"""An API over a tiny real market (the real planner, no AWS) for the tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from scheduler.actuator.ec2 import Ec2Adapter
from scheduler.actuator.executor import Actuator
from scheduler.api.app import create_app
from scheduler.api.context import ApiContext
from scheduler.config import PlannerConfig, ServiceConfig, Settings
from scheduler.services.recommendations import RecommendationCache, SnapshotRecommender
from tests.scheduler.market import MODEL, seed_market

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ZONES = [("us-east-1a", "use1-az6"), ("us-east-1b", "use1-az1"), ("us-east-1c", "use1-az2")]


def _no_aws(_region: str) -> Any:
    raise AssertionError("these tests never reach AWS")


def market_app(engine: Engine, **service: Any) -> FastAPI:
    """The app over a seeded three-AZ market, with the real planner and an actuator that
    fails the test if it calls AWS."""
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
        planner=PlannerConfig(model=MODEL),
        service=ServiceConfig(name="llm-test", api_token=TOKEN, **service),
    )

    def actuator() -> Actuator:
        ec2 = Ec2Adapter(_no_aws, settings.service, model=MODEL)
        return Actuator(engine, settings, ec2, probe=lambda _url: False)

    context = ApiContext(
        engine=engine,
        settings=settings,
        actuator_factory=actuator,
        recommendations=RecommendationCache(
            engine,
            SnapshotRecommender(engine, settings, max_age_s=60),
            ttl_s=60,
            max_entries=settings.service.recommendation_cache_entries,
            max_concurrent=settings.service.max_concurrent_plans,
            queue_wait_s=settings.service.plan_queue_wait_s,
        ),
    )
    return create_app(context)


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return market_app(engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
