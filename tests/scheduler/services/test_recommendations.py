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
from scheduler.services.recommendations import RecommendationCache, encode_document


def test_concurrent_misses_plan_once_and_new_data_replans(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    gate = threading.Event()

    def recommend(slo: float, model: str) -> bytes:
        calls.append(slo)
        gate.wait(10)
        return encode_document({"slo": slo, "plan": len(calls)})

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
        engine, lambda slo, model: encode_document({"slo": slo}), ttl_s=3600
    )
    made = cache.get(1.0, "m")
    assert cache.peek(1.0, "m") == (made, False)
    cache._checked_at -= 2 * recommendations.RECHECK_S  # a second has passed
    assert cache.peek(1.0, "m") == (None, True)  # this caller looks at the database
    assert cache.peek(1.0, "m") == (made, False)  # the others are served meanwhile
    assert cache.get(1.0, "m", check=True) is made  # nothing changed
    assert cache.peek(2.0, "m") == (None, False)  # unknown key: plan it
