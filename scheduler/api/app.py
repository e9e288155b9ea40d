"""The FastAPI application factory: ``create_app(context)``; ``build_context`` wires real parts."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from scheduler import ui
from scheduler.api import errors, metrics
from scheduler.api.body_limit import BodyLimit
from scheduler.api.context import ApiContext
from scheduler.api.routers import events, fleet, health, oracle, plans, recommendations
from scheduler.config import Settings
from scheduler.services.recommendations import (
    ProcessRecommender,
    RecommendationCache,
    Recommender,
    SnapshotRecommender,
)


def create_app(context: ApiContext) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        context.recommendations.close()  # the planning workers, if any

    app = FastAPI(
        lifespan=lifespan,
        title="spot scheduler",
        description="Plans the cheapest spot/on-demand GPU fleet that meets a throughput SLO, "
        "and keeps the EC2 fleet matching it. Errors are JSON {code, message}; endpoints that "
        "change anything need `Authorization: Bearer <service.api_token>`.",
        version="0.1.0",
    )
    app.state.context = context
    app.add_middleware(BodyLimit, max_bytes=context.settings.service.max_body_bytes)
    errors.install(app)
    for module in (health, recommendations, plans, fleet, events, oracle):
        app.include_router(module.router)
    app.include_router(ui.router)  # the dashboard at /ui, and the JSON its pages show
    metrics.instrument(app, context)  # request latency into /metrics
    return app


def build_context(engine: Engine, settings: Settings) -> ApiContext:
    """The context with the real actuator (boto3 EC2/ELBv2, HTTP probe) and the real planner."""
    from scheduler.services.wiring import build_actuator

    service = settings.service
    return ApiContext(
        engine=engine,
        settings=settings,
        # One actuator (and one set of AWS clients) for the process's lifetime.
        actuator_factory=functools.cache(lambda: build_actuator(engine, settings)),
        recommendations=RecommendationCache(
            engine,
            recommender(engine, settings),
            ttl_s=service.recommendation_cache_s,
            max_entries=service.recommendation_cache_entries,
            max_concurrent=service.max_concurrent_plans,
            queue_wait_s=service.plan_queue_wait_s,
        ),
    )


def recommender(engine: Engine, settings: Settings) -> Recommender:
    """Plans in worker processes (service.plan_in_processes), else in threads of this one (also
    for an in-memory SQLite database, which other processes cannot open)."""
    service = settings.service
    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    if service.plan_in_processes and not in_memory:
        return ProcessRecommender(
            engine,
            settings,
            workers=service.max_concurrent_plans,
            max_age_s=service.recommendation_cache_s,
        )
    return SnapshotRecommender(engine, settings, max_age_s=service.recommendation_cache_s)


def app_for(engine: Engine, settings: Settings, **extras: Any) -> FastAPI:
    context = build_context(engine, settings)
    context.extras.update(extras)
    return create_app(context)
