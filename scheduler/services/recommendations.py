"""GET /recommendations: the current best plan, cached until the oracle's data changes."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import (
    BenchmarkRunModel,
    CapacityErrorModel,
    InterruptionFrequencyModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    SpotPriceModel,
)

#: Tables whose change invalidates a recommendation (newest id of each: one index lookup).
_WATCHED = (
    SpotPriceModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    InterruptionFrequencyModel,
    BenchmarkRunModel,
    CapacityErrorModel,
)

#: Seconds between two looks at the oracle's tables (so a hot endpoint costs no query per hit).
RECHECK_S = 1.0

#: (slo tokens/s, model) -> the planner's JSON document.
Recommender = Callable[[float, str], dict[str, Any]]


@dataclass(frozen=True)
class Recommendation:
    document: dict[str, Any]
    body: bytes
    etag: str


class RecommendationCache:
    """Plans by (SLO, model), kept ``ttl_s`` seconds and dropped when the oracle's data changes."""

    def __init__(self, engine: Engine, recommend: Recommender, *, ttl_s: float) -> None:
        self._engine = engine
        self._recommend = recommend
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._checked_at = -RECHECK_S
        self._entries: dict[tuple[float, str], tuple[float, str, Recommendation]] = {}

    def get(self, slo_tokens_per_second: float, model: str) -> Recommendation:
        key = (slo_tokens_per_second, model)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl_s:
            if now - self._checked_at < RECHECK_S:
                return entry[2]
            fingerprint = self.fingerprint()
            self._checked_at = now
            if entry[1] == fingerprint:
                return entry[2]
        fingerprint = self.fingerprint()
        self._checked_at = now
        document = self._recommend(slo_tokens_per_second, model)
        body = json.dumps(document, sort_keys=True, default=str).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        made = Recommendation(document, body, etag)
        with self._lock:
            self._entries[key] = (now, fingerprint, made)
        return made

    def fingerprint(self) -> str:
        """The newest row id of each watched table: any insert changes it."""
        with transaction(self._engine) as session:
            ids = [session.scalar(sa.select(sa.func.max(model.id))) or 0 for model in _WATCHED]
        return ",".join(str(i) for i in ids)
