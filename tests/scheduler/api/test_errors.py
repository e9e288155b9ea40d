"""The API's error boundary: what a careless or hostile client sends is refused with 4xx JSON
and changes nothing; an unexpected error is JSON too, with a request id that the log repeats."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.executor import Actuator
from scheduler.api.app import create_app
from scheduler.api.context import ApiContext
from scheduler.config import ServiceConfig, Settings
from scheduler.models import EventModel, PlanModel
from scheduler.services.recommendations import RecommendationCache, encode_document
from tests.scheduler.api.conftest import AUTH, TOKEN, market_app
from tests.scheduler.fleet_helpers import interruption

JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


def _stored(engine: Engine) -> tuple[int, int]:
    with transaction(engine) as session:
        return (
            session.scalar(sa.select(sa.func.count()).select_from(EventModel)) or 0,
            session.scalar(sa.select(sa.func.count()).select_from(PlanModel)) or 0,
        )


def _refused(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert "\n" not in body["message"]
    return str(body["message"])


BAD_TIMES = [
    "9999-12-31T23:59:59-05:00",  # overflows when moved to UTC
    "0001-01-01T00:00:00+05:00",
    "2500-01-01T00:00:00Z",
    "1900-01-01T00:00:00Z",
]
TOO_LONG = [
    ({"id": "e" * 65}, "id"),
    ({"region": "r" * 33}, "region"),
    ({"detail": {"instance-id": "i-" + "0" * 31}}, "instance-id"),
    ({"detail": {"instance-id": "i-1", "deep": json.loads("[" * 40 + "]" * 40)}}, "deep"),
]


def test_event_times_out_of_range_and_fields_over_their_columns_are_422(
    client: TestClient, engine: Engine
) -> None:
    """On both databases (PostgreSQL refused these with a 500; SQLite stored them)."""
    for time in BAD_TIMES:
        event = {**interruption("i-0123456789abcdef0"), "time": time}
        message = _refused(client.post("/events/ec2", json=event, headers=AUTH), 422)
        assert "time" in message and "2200" in message
    for change, field in TOO_LONG:
        event = {**interruption("i-0123456789abcdef0"), **change}
        assert field in _refused(client.post("/events/ec2", json=event, headers=AUTH), 422)
    assert _stored(engine) == (0, 0)


def test_control_characters_in_names_are_422_not_a_postgresql_500(
    client: TestClient, engine: Engine
) -> None:
    nul = "a\x00b"
    for method, path, body, field in [
        ("get", "/benchmarks?model=a%00b", None, "model"),
        ("get", "/prices?region=a%00b", None, "region"),
        ("get", "/recommendations?slo=500tok/s&model=a%00b", None, "model"),
        ("post", "/events/ec2", {**interruption("i-1"), "id": nul}, "id"),
        ("post", "/events/ec2", interruption(nul), "resources[0]"),
        ("post", "/events/ec2", {**interruption("i-1"), "source": nul}, "source"),
        ("post", "/plans", {"slo": "500tok/s", "model": nul}, "model"),
    ]:
        response = client.request(method, path, json=body, headers=AUTH)
        assert field in _refused(response, 422)
    assert _stored(engine) == (0, 0)


def test_a_hand_made_plan_with_a_non_finite_price_is_422(
    client: TestClient, engine: Engine
) -> None:
    for number in ["1e999", "-1e999", "Infinity", "NaN"]:
        body = (
            '{"slo": "500tok/s", "allocations": [{"region": "us-east-1", "zone": "use1-az1", '
            '"instance_type": "g5.xlarge", "market": "spot", "count": 1, '
            f'"price_usd_per_hour_each": {number}}}]}}'
        )
        message = _refused(client.post("/plans", content=body, headers=JSON_HEADERS), 422)
        assert "price_usd_per_hour_each" in message
    assert _stored(engine) == (0, 0)


def test_a_non_finite_number_anywhere_in_an_event_is_422(
    client: TestClient, engine: Engine
) -> None:
    event = json.dumps(interruption("i-0123456789abcdef0")).replace(
        '"version": "0"', '"version": Infinity'
    )
    assert "finite" in _refused(
        client.post("/events/ec2", content=event, headers=JSON_HEADERS), 422
    )
    assert _stored(engine) == (0, 0)


def test_a_body_over_the_limit_is_413_json_and_stores_nothing(engine: Engine) -> None:
    app = market_app(engine, max_body_bytes=4096)
    event = {**interruption("i-0123456789abcdef0"), "padding": "x" * 5000}
    with TestClient(app) as client:
        _refused(client.post("/events/ec2", json=event, headers=AUTH), 413)
        chunked = iter([b'{"id": "', b"x" * 3000, b"x" * 3000, b'"}'])  # no Content-Length
        _refused(client.post("/events/ec2", content=chunked, headers=JSON_HEADERS), 413)
        small = client.post("/events/ec2", json=interruption("i-1", "e-2"), headers=AUTH)
        assert small.status_code == 200, small.text
    assert _stored(engine) == (1, 0)


def test_json_nested_100k_levels_deep_is_a_4xx_json_answer(client: TestClient) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = client.post("/events/ec2", content=body, headers=JSON_HEADERS)
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"code", "message"}


@pytest.fixture
def broken_client(engine: Engine) -> Iterator[TestClient]:
    """An API whose actuator fails with a bug (not a user's error)."""

    def broken() -> Actuator:
        raise RuntimeError("a bug in building the actuator")

    context = ApiContext(
        engine=engine,
        settings=Settings(service=ServiceConfig(name="llm-test", api_token=TOKEN)),
        actuator_factory=broken,
        recommendations=RecommendationCache(
            engine, lambda slo, model: encode_document({}), ttl_s=60
        ),
    )
    with TestClient(create_app(context), raise_server_exceptions=False) as client:
        yield client


def test_an_unexpected_error_is_json_with_a_request_id_that_the_log_repeats(
    broken_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="scheduler.api"):
        response = broken_client.post("/events/ec2", json=interruption("i-1"), headers=AUTH)
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal" and set(body) == {"code", "message", "request_id"}
    assert "a bug in building" not in body["message"]  # no internals to the client
    assert response.headers["X-Request-ID"] == body["request_id"]
    logged = [r for r in caplog.records if body["request_id"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # with its traceback


def test_an_infeasible_slo_is_409_by_its_class(client: TestClient, engine: Engine) -> None:
    message = _refused(client.post("/plans", json={"slo": "900k tok/s"}, headers=AUTH), 409)
    assert message
    assert client.get("/recommendations?slo=900ktok/s").json()["code"] == "infeasible"
    assert _stored(engine) == (0, 0)
