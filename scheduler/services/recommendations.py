"""GET /recommendations: plans by (SLO, model), cheap to read under load.

- **Cache.** At most ``max_entries`` plans (least recently used dropped first), each kept
  ``ttl_s`` seconds and dropped when the oracle's data changes. The oracle is looked at (the
  newest row id of each watched table) no more than once every :data:`RECHECK_S`, by one caller
  while the others are served the cached plan.
- **Single flight.** One computation per key at a time; other requests for the key wait for its
  answer.
- **Admission.** At most ``max_concurrent`` uncached plans are computed at once; a request that
  waits longer than ``queue_wait_s`` for a slot is refused with :class:`BusyError` (503 with
  Retry-After), so that a flood of distinct SLOs cannot starve cached reads of CPU. A key whose
  plan outlived its time to live is served that plan instead, while the oracle is unchanged.
- **Planning data in memory.** :class:`SnapshotRecommender` plans on a copy of the planning data
  per model, reloaded when the oracle changes (loading took most of each plan: 0.5-0.6 s of
  0.7-0.8 s on the sample market), and on an empty oracle loads the embedded sample market
  first, as ``scheduler plan`` does, and says so in the plan (``provenance``, ``notes``).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from oracle.db import transaction
from oracle.models import (
    BenchmarkRunModel,
    CapacityErrorModel,
    InstanceTypeModel,
    InterruptionEventModel,
    InterruptionFrequencyModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    PoolObservationModel,
    ServiceQuotaModel,
    SpotPriceModel,
)
from scheduler.errors import BusyError

if TYPE_CHECKING:
    from scheduler.config import Settings
    from scheduler.planner import Plan
    from scheduler.planning.candidates import CandidateSet, PlanningData

log = logging.getLogger("scheduler.api")

#: Every table a plan reads (:func:`scheduler.planning.load.load_planning_data`): a change to
#: any invalidates a recommendation. The newest id of each is one index lookup.
_WATCHED = (
    SpotPriceModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    InterruptionFrequencyModel,
    BenchmarkRunModel,
    CapacityErrorModel,
    ServiceQuotaModel,
    PoolObservationModel,
    InterruptionEventModel,
)

#: Seconds between two looks at the oracle's tables (so a hot endpoint costs no query per hit).
RECHECK_S = 1.0

#: How much lower the planning workers' scheduling priority is than the serving process's: the
#: lowest, so that cached reads keep their latency while plans are made (``benchmarks.api`` on 2
#: idle cores, 16 cache-busting clients: cached p99 beside them / alone 2.54 at niceness 10,
#: 2.31 at 19; uncached plans 12.8/s and 14.3/s). Where the OS has ``SCHED_IDLE`` (Linux) and
#: ``service.plan_priority`` is ``idle``, the workers also take that policy (see
#: :func:`lower_priority`).
WORKER_NICENESS = 19


@dataclass(frozen=True)
class Recommended:
    """A plan made for a recommendation, with what its document adds to the planner's: the
    sources of its data (``provenance``) and ``notes`` on what was done to make it (both left
    out of the document when ``None``)."""

    plan: Plan
    provenance: tuple[str, ...] | None = None
    notes: tuple[str, ...] | None = None

    def document(self) -> dict[str, Any]:
        """The planner's document (``scheduler plan --format json``'s keys), plus
        ``provenance`` and ``notes`` where set; datetimes are left for
        :func:`encode_document` (one encoding per plan)."""
        document = self.plan.to_dict()
        if self.provenance is not None:
            document["provenance"] = list(self.provenance)
        if self.notes is not None:
            document["notes"] = list(self.notes)
        return document

    def to_dict(self) -> dict[str, Any]:
        """:meth:`document` as JSON values (datetimes in ISO 8601)."""
        from scheduler.services.planning import json_safe

        return json_safe(self.document())


#: (slo tokens/s, model) -> the plan, or a :class:`Recommendation` already made of its document
#: by :func:`make_recommendation` (a planning process makes it, so that the serving process
#: only forwards bytes and never holds its GIL to encode or compress a large document).
Recommender = Callable[[float, str], "Recommended | Recommendation"]
Key = tuple[float, str]

#: zlib level of the gzip copy of each recommendation. Measured on the sample market's plan at
#: 500 tok/s (545 KB of JSON): level 1 compresses in 2.6 ms to 45 KB, level 6 in 5.7 ms to
#: 32 KB; the copy is made once per plan (in a planning worker) and sent on every cached read.
GZIP_LEVEL = 1


def encode_document(document: dict[str, Any]) -> bytes:
    """The response body of a recommendation: canonical JSON (sorted keys, no NaN), datetimes
    in ISO 8601 (as :func:`scheduler.services.planning.json_safe` writes them)."""
    return json.dumps(document, sort_keys=True, default=_plain, allow_nan=False).encode()


def make_recommendation(document: dict[str, Any], *, fingerprint: str = "") -> Recommendation:
    """The cached form of a plan: its JSON body, a gzip copy of it and an ETag of the body.

    ``fingerprint``: the oracle's :func:`fingerprint` when the plan's data was loaded, if known.
    """
    body = encode_document(document)
    return Recommendation(
        body=body,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        gzip_body=gzip.compress(body, GZIP_LEVEL, mtime=0),
        fingerprint=fingerprint,
    )


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@dataclass(frozen=True)
class Recommendation:
    """A plan as served: ``body`` (JSON), ``gzip_body`` (the same, gzip-compressed, for clients
    that accept it), ``etag`` (of the body; the gzip copy's is :attr:`gzip_etag`), and the
    oracle's ``fingerprint`` its data was loaded at ("" if unknown)."""

    body: bytes
    etag: str
    gzip_body: bytes
    fingerprint: str = ""

    @property
    def gzip_etag(self) -> str:
        """A representation compressed differently has its own strong validator (RFC 9110)."""
        return self.etag[:-1] + '-gzip"'

    @cached_property
    def document(self) -> dict[str, Any]:
        """The planner's document, decoded from the body when a page needs its fields."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


def fingerprint(engine: Engine) -> str:
    """The newest row id of each watched table, and the count and newest observation of the
    instance types (keyed by name, no id): any insert changes it."""
    with transaction(engine) as session:
        ids = [session.scalar(sa.select(sa.func.max(model.id))) or 0 for model in _WATCHED]
        types = session.execute(
            sa.select(sa.func.count(), sa.func.max(InstanceTypeModel.observed_at))
        ).one()
    return ",".join(str(i) for i in [*ids, *types])


class RecommendationCache:
    """Plans by (SLO, model): bounded, fresh while the oracle is unchanged, computed once per
    key at a time, at most ``max_concurrent`` at once (see the module's docstring)."""

    def __init__(
        self,
        engine: Engine,
        recommend: Recommender,
        *,
        ttl_s: float,
        max_entries: int = 256,
        max_concurrent: int = 2,
        queue_wait_s: float = 2.0,
    ) -> None:
        self._engine = engine
        self._recommend = recommend
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._max_concurrent = max_concurrent
        self._queue_wait_s = queue_wait_s
        self._lock = threading.Lock()
        self._checked_at = -RECHECK_S
        self._seen = ""  # the fingerprint at the last look
        self._entries: OrderedDict[Key, tuple[float, str, Recommendation]] = OrderedDict()
        self._planning: dict[Key, threading.Lock] = {}
        # Made on first use in the running event loop (a test client may bring a new loop).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._in_flight: dict[Key, asyncio.Future[Recommendation]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Stop the recommender's workers, if it has any."""
        close = getattr(self._recommend, "close", None)
        if close is not None:
            close()

    def peek(self, slo_tokens_per_second: float, model: str) -> tuple[Recommendation | None, bool]:
        """The cached recommendation when it needs no database look (never blocks on I/O), and
        whether the caller must look: once a second one caller is told to (``get(...,
        check=True)``) while the others keep getting the cached plan."""
        now = time.monotonic()
        key = (slo_tokens_per_second, model)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or now - entry[0] >= self._ttl_s:
                return None, False
            self._entries.move_to_end(key)
            if now - self._checked_at < RECHECK_S:
                return entry[2], False
            self._checked_at = now
            return None, True

    async def obtain(
        self, slo_tokens_per_second: float, model: str, *, check: bool = False
    ) -> Recommendation:
        """:meth:`get` for the event loop: joins a computation of the same key already under
        way, and waits at most ``queue_wait_s`` for a planning slot (else :class:`BusyError`)."""
        key = (slo_tokens_per_second, model)
        if check:
            fresh = await run_in_threadpool(self._fresh, key, check=True)
            if fresh is not None:
                return fresh
        slots = self._loop_state()
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Recommendation] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            try:
                made = await self._admitted(slots, lambda: run_in_threadpool(self.get, *key))
            except BusyError:
                # An SLO planned before keeps being served while the planners are busy, as long
                # as the oracle has not changed since (only its time to live has run out).
                stale = await run_in_threadpool(self._unchanged, key)
                if stale is None:
                    raise
                made = stale
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when none waits
            raise
        else:
            future.set_result(made)
            return made
        finally:
            del self._in_flight[key]

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
        try:
            with key_lock:
                fresh = self._fresh(key)
                if fresh is not None:
                    return fresh
                return self._compute(key)
        finally:
            with self._lock:
                if not key_lock.locked():
                    self._planning.pop(key, None)

    def fingerprint(self) -> str:
        return fingerprint(self._engine)

    # -- helpers, in call order --------------------------------------------------------------

    def _loop_state(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None:
            self._loop = loop
            self._slots = asyncio.Semaphore(self._max_concurrent)
            self._in_flight = {}
        return self._slots

    async def _admitted(
        self, slots: asyncio.Semaphore, work: Callable[[], Awaitable[Recommendation]]
    ) -> Recommendation:
        try:
            await asyncio.wait_for(slots.acquire(), self._queue_wait_s)
        except TimeoutError:
            raise BusyError(
                f"{self._max_concurrent} uncached plans are being computed and the queue is "
                f"full; retry shortly, or ask for an SLO already planned",
                retry_after_s=max(1.0, self._queue_wait_s),
            ) from None
        try:
            return await work()
        finally:
            slots.release()

    def _fresh(self, key: Key, *, check: bool = False) -> Recommendation | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._ttl_s:
            return None
        if not check and now - self._checked_at < RECHECK_S:
            return entry[2]
        current = self._look()
        if entry[1] != current:
            with self._lock:
                self._entries.pop(key, None)
        return entry[2] if entry[1] == current else None

    def _unchanged(self, key: Key) -> Recommendation | None:
        """The plan held for ``key``, however old, if the oracle is as it was when planned."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[1] != self._look():
            return None
        return entry[2]

    def _compute(self, key: Key) -> Recommendation:
        # Read before planning: a plan is never labelled with a state newer than its data.
        before = self._recent_fingerprint()
        answer = self._recommend(*key)
        made = (
            answer if isinstance(answer, Recommendation) else make_recommendation(answer.document())
        )
        # A planning worker says which state its data had (no database look here).
        current = made.fingerprint or before
        now = time.monotonic()
        with self._lock:
            self._entries[key] = (now, current, made)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return made

    def _recent_fingerprint(self) -> str:
        """The fingerprint looked at within :data:`RECHECK_S`, else a new look: at most one
        look a second however many uncached plans are made (each is ten queries)."""
        with self._lock:
            if self._seen and time.monotonic() - self._checked_at < RECHECK_S:
                return self._seen
        return self._look()

    def _look(self) -> str:
        current = self.fingerprint()
        with self._lock:
            self._seen, self._checked_at = current, time.monotonic()
        return current


@dataclass(frozen=True)
class _Snapshot:
    fingerprint: str
    loaded_at: float
    data: PlanningData
    candidates: CandidateSet
    notes: tuple[str, ...]


class SnapshotRecommender:
    """Plans on an in-memory copy of each model's planning data (a :data:`Recommender`).

    The copy is reloaded when the oracle's fingerprint changes (looked at no more than once a
    :data:`RECHECK_S`) or when it is older than ``max_age_s`` (its ``as_of`` is the load time,
    so the ages a plan reports stay within that). One load per model at a time. The served
    model on an empty oracle first gets the embedded sample market and reference goodput
    figures (:func:`scheduler.planning.load.ensure_planning_data`), and its plans say so.
    """

    def __init__(
        self, engine: Engine, settings: Settings, *, max_age_s: float, ensure: bool = True
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._max_age_s = max_age_s
        self._ensure = ensure
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._snapshots: dict[str, _Snapshot] = {}
        self._fingerprint = ""
        self._checked_at = -RECHECK_S

    def __call__(self, slo_tokens_per_second: float, model: str) -> Recommendation:
        recommended, fingerprint = self.recommended(slo_tokens_per_second, model)
        return make_recommendation(recommended.document(), fingerprint=fingerprint)

    def recommended(self, slo_tokens_per_second: float, model: str) -> tuple[Recommended, str]:
        """The plan with its provenance and notes, and the fingerprint of the data it was
        planned on."""
        from scheduler.planner import plan_from_data

        snapshot = self._snapshot(model)
        plan = plan_from_data(
            snapshot.data,
            config=self._settings.planner,
            slo_tokens_per_second=slo_tokens_per_second,
            candidate_set=snapshot.candidates,
        )
        provenance = tuple(sorted({s for age in plan.data for s in age.sources}))
        return Recommended(plan, provenance=provenance, notes=snapshot.notes), snapshot.fingerprint

    def _snapshot(self, model: str) -> _Snapshot:
        now = time.monotonic()
        current = self._current_fingerprint(now)
        with self._lock:
            snapshot = self._snapshots.get(model)
            load_lock = self._loading.setdefault(model, threading.Lock())
        if snapshot is not None and self._usable(snapshot, current, now):
            return snapshot
        with load_lock:
            with self._lock:
                snapshot = self._snapshots.get(model)
            if snapshot is not None and self._usable(snapshot, current, time.monotonic()):
                return snapshot
            snapshot = self._load(model, notes=snapshot.notes if snapshot else ())
            with self._lock:
                self._snapshots[model] = snapshot
            return snapshot

    def _current_fingerprint(self, now: float) -> str:
        with self._lock:
            if now - self._checked_at < RECHECK_S:
                return self._fingerprint
        current = fingerprint(self._engine)
        with self._lock:
            self._fingerprint, self._checked_at = current, now
        return current

    def _usable(self, snapshot: _Snapshot, current: str, now: float) -> bool:
        return snapshot.fingerprint == current and now - snapshot.loaded_at < self._max_age_s

    def _load(self, model: str, *, notes: tuple[str, ...]) -> _Snapshot:
        from scheduler.planning.candidates import build_candidates
        from scheduler.planning.load import ensure_planning_data, load_planning_data

        config = self._settings.planner
        if self._ensure and model == served_model(self._settings):
            done = ensure_planning_data(self._engine, settings=self._settings, model=model)
            notes = (*notes, *done)
        current = fingerprint(self._engine)
        loaded_at = time.monotonic()
        data = load_planning_data(self._engine, config=config, model=model)
        with self._lock:
            self._fingerprint, self._checked_at = current, loaded_at
        return _Snapshot(current, loaded_at, data, build_candidates(data, config), notes)


class ProcessRecommender:
    """A :data:`Recommender` that plans in ``workers`` worker processes, each with its own
    engine and its own :class:`SnapshotRecommender`, so that planning uses every core and
    never holds the serving process's GIL (cached reads stay fast beside it).

    The served model's embedded-sample check (which may write the sample into an empty
    oracle) runs here, once, before any worker plans, so that two workers never both load it.
    """

    def __init__(
        self, engine: Engine, settings: Settings, *, workers: int, max_age_s: float
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._ensured: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._workers = workers
        self._max_age_s = max_age_s
        self._pool = self._start()

    def __call__(self, slo_tokens_per_second: float, model: str) -> Recommendation:
        notes = self._ensure(model)
        pool = self._pool
        try:
            return pool.submit(_plan_in_worker, slo_tokens_per_second, model, notes).result()
        except BrokenProcessPool:
            log.error("a planning worker died; starting new ones")
            with self._lock:
                if self._pool is pool:
                    self._pool = self._start()
            raise BusyError("a planning worker restarted; retry", retry_after_s=1.0) from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            # Not fork: the serving process runs threads (and holds pooled connections).
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(
                self._engine.url.render_as_string(hide_password=False),
                self._settings,
                self._max_age_s,
            ),
        )

    def _ensure(self, model: str) -> tuple[str, ...]:
        from scheduler.planning.load import ensure_planning_data

        with self._lock:
            if model not in self._ensured:
                done: list[str] = []
                if model == served_model(self._settings):
                    done = ensure_planning_data(self._engine, settings=self._settings, model=model)
                self._ensured[model] = tuple(done)
            return self._ensured[model]


def served_model(settings: Settings) -> str:
    return settings.service.spec.model or settings.planner.model


_worker: list[SnapshotRecommender] = []


def lower_priority(priority: str) -> str:
    """Put this process below the serving process: ``low``, the lowest niceness (the scheduler
    still gives it a small share of a busy core, and a slice it has begun); ``idle``, also
    Linux's ``SCHED_IDLE`` policy, under which it runs only on cycles no other process wants
    and a waking serving thread preempts it at once (on a saturated machine its plans wait,
    and the callers get 503 ``busy`` once the queue fills). Returns the priority in force
    (``low`` where ``SCHED_IDLE`` is missing or refused)."""
    os.nice(WORKER_NICENESS)
    idle = getattr(os, "SCHED_IDLE", None)
    if priority != "idle" or idle is None:
        return "low"
    try:
        os.sched_setscheduler(0, idle, os.sched_param(0))
    except OSError:
        return "low"
    return "idle"


def _start_worker(database_url: str, settings: Settings, max_age_s: float) -> None:
    from oracle.db import make_engine

    # Below the serving process: when the cores are busy, cached reads go first.
    lower_priority(settings.service.plan_priority)
    engine = make_engine(database_url)
    _worker[:] = [SnapshotRecommender(engine, settings, max_age_s=max_age_s, ensure=False)]


def _plan_in_worker(
    slo_tokens_per_second: float, model: str, notes: tuple[str, ...]
) -> Recommendation:
    """Plan in this worker and encode, compress and tag the answer here: the serving process
    gets bytes to forward, and the fingerprint of the data they were planned on."""
    recommended, fingerprint = _worker[0].recommended(slo_tokens_per_second, model)
    earlier = recommended.notes or ()
    document = replace(recommended, notes=(*notes, *earlier)).document()
    return make_recommendation(document, fingerprint=fingerprint)
