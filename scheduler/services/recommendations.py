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
        self._planning: dict[tuple[float, str], threading.Lock] = {}

    def peek(self, slo_tokens_per_second: float, model: str) -> tuple[Recommendation | None, bool]:
        """The cached recommendation when it needs no database look (never blocks on I/O), and
        whether the caller must look: once a second one caller is told to (``get(...,
        check=True)``) while the others keep getting the cached plan."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get((slo_tokens_per_second, model))
            if entry is None or now - entry[0] >= self._ttl_s:
                return None, False
            if now - self._checked_at < RECHECK_S:
                return entry[2], False
            self._checked_at = now
            return None, True

    def get(
        self, slo_tokens_per_second: float, model: str, *, check: bool = False
    ) -> Recommendation:
        """The cached plan if still good, else a new one; one thread plans per key while the
        others wait for its answer (no stampede of identical plans on a cold cache)."""
        key = (slo_tokens_per_second, model)
        fresh = self._fresh(key, check=check)
        if fresh is not None:
            return fresh
        with self._lock:
            key_lock = self._planning.setdefault(key, threading.Lock())
        with key_lock:
            fresh = self._fresh(key)
            if fresh is not None:
                return fresh
            fingerprint = self.fingerprint()
            document = self._recommend(slo_tokens_per_second, model)
            body = json.dumps(document, sort_keys=True, default=str).encode()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            made = Recommendation(document, body, etag)
            now = time.monotonic()
            with self._lock:
                self._entries[key] = (now, fingerprint, made)
                self._checked_at = now
            return made

    def _fresh(self, key: tuple[float, str], *, check: bool = False) -> Recommendation | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._ttl_s:
            return None
        if not check and now - self._checked_at < RECHECK_S:
            return entry[2]
        fingerprint = self.fingerprint()
        with self._lock:
            self._checked_at = now
        return entry[2] if entry[1] == fingerprint else None

    def fingerprint(self) -> str:
        """The newest row id of each watched table: any insert changes it."""
        with transaction(self._engine) as session:
            ids = [session.scalar(sa.select(sa.func.max(model.id))) or 0 for model in _WATCHED]
        return ",".join(str(i) for i in ids)
