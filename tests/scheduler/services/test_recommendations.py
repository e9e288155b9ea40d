"""The recommendation cache: one plan per key under concurrency, recomputed when data changes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import SpotPriceModel
from scheduler.services import recommendations
from scheduler.services.recommendations import (
    Recommendation,
    RecommendationCache,
    make_recommendation,
)


def test_concurrent_misses_plan_once_and_new_data_replans(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    gate = threading.Event()

    def recommend(slo: float, model: str) -> Recommendation:
        calls.append(slo)
        gate.wait(10)
        return make_recommendation({"slo": slo, "plan": len(calls)})

    cache = RecommendationCache(engine, recommend, ttl_s=3600)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(500.0, "m"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # let every thread reach the cache before the plan finishes
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len({r.etag for r in results}) == 1
    assert cache.peek(500.0, "m") == (results[0], False)

    monkeypatch.setattr(recommendations, "RECHECK_S", 0.0)
    assert cache.get(500.0, "m") is results[0]  # data unchanged: still cached
    with transaction(engine) as session:
        now = datetime.now(UTC)
        session.add(
            SpotPriceModel(
                region="us-east-1",
                zone="use1-az1",
                instance_type="g5.xlarge",
                product_description="Linux/UNIX",
                timestamp=now,
                price_usd_per_hour=0.3,
                source="file",
                observed_at=now,
            )
        )
    fresh = cache.get(500.0, "m")
    assert len(calls) == 2 and fresh.etag != results[0].etag


def test_once_a_second_one_caller_looks_and_the_others_are_served(engine: Engine) -> None:
    cache = RecommendationCache(
        engine, lambda slo, model: make_recommendation({"slo": slo}), ttl_s=3600
    )
    made = cache.get(1.0, "m")
    assert cache.peek(1.0, "m") == (made, False)
    cache._checked_at -= 2 * recommendations.RECHECK_S  # a second has passed
    assert cache.peek(1.0, "m") == (None, True)  # this caller looks at the database
    assert cache.peek(1.0, "m") == (made, False)  # the others are served meanwhile
    assert cache.get(1.0, "m", check=True) is made  # nothing changed
    assert cache.peek(2.0, "m") == (None, False)  # unknown key: plan it


def test_uncached_plans_look_at_the_oracle_at_most_once_a_recheck(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks: list[str] = []

    def counted(engine: Engine) -> str:
        looks.append("look")
        return "state-1"

    monkeypatch.setattr(recommendations, "fingerprint", counted)
    monkeypatch.setattr(recommendations, "RECHECK_S", 3600.0)
    cache = RecommendationCache(
        engine, lambda slo, model: make_recommendation({"slo": slo}), ttl_s=3600
    )
    for slo in range(1, 21):
        cache.get(float(slo), "m")
    assert len(cache) == 20 and looks == ["look"]


def test_a_plan_is_labelled_with_the_state_its_data_had(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planning worker's answer carries the fingerprint of its copy of the data: a plan made
    on an older copy is replanned at the next look, however recent the cache's own look."""
    state = ["state-2"]
    monkeypatch.setattr(recommendations, "fingerprint", lambda engine: state[0])
    made: list[float] = []

    def recommend(slo: float, model: str) -> recommendations.Recommendation:
        made.append(slo)
        label = "state-1" if len(made) == 1 else state[0]  # the first copy predates state-2
        return recommendations.make_recommendation({"slo": slo}, fingerprint=label)

    cache = RecommendationCache(engine, recommend, ttl_s=3600)
    first = cache.get(5.0, "m")
    assert first.fingerprint == "state-1"
    again = cache.get(5.0, "m", check=True)
    assert again is not first and again.fingerprint == "state-2" and made == [5.0, 5.0]
    assert cache.get(5.0, "m", check=True) is again


def test_a_recommendation_is_its_document_encoded_compressed_and_tagged() -> None:
    import gzip
    import json

    document = {"b": 1.5, "a": [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)], "c": None}
    made = recommendations.make_recommendation(document)
    assert json.loads(made.body) == {"a": ["2026-01-02T03:04:05+00:00"], "b": 1.5, "c": None}
    assert made.body.index(b'"a"') < made.body.index(b'"b"')  # canonical: sorted keys
    assert gzip.decompress(made.gzip_body) == made.body
    assert made.etag != made.gzip_etag and made.gzip_etag.startswith(made.etag[:-1])
    assert recommendations.make_recommendation(dict(document)).etag == made.etag
    with pytest.raises(ValueError):
        recommendations.make_recommendation({"cost": float("nan")})
