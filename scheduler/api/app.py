"""The FastAPI application factory: ``create_app(context)``; ``build_context`` wires real parts."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from scheduler import ui
from scheduler.api import errors, metrics
from scheduler.api.context import ApiContext
from scheduler.api.routers import events, fleet, health, oracle, plans, recommendations
from scheduler.config import Settings
from scheduler.services.recommendations import RecommendationCache


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="spot scheduler",
        description="Plans the cheapest spot/on-demand GPU fleet that meets a throughput SLO, "
        "and keeps the EC2 fleet matching it. Errors are JSON {code, message}; endpoints that "
        "change anything need `Authorization: Bearer <service.api_token>`.",
        version="0.1.0",
    )
    app.state.context = context
    errors.install(app)
    for module in (health, recommendations, plans, fleet, events, oracle):
        app.include_router(module.router)
    app.include_router(ui.router)  # the dashboard at /ui, and the JSON its pages show
    metrics.instrument(app, context)  # request latency into /metrics
    return app


def build_context(engine: Engine, settings: Settings) -> ApiContext:
    """The context with the real actuator (boto3 EC2/ELBv2, HTTP probe) and the real planner."""
    from scheduler.services.wiring import build_actuator, recommend

    return ApiContext(
        engine=engine,
        settings=settings,
        # One actuator (and one set of AWS clients) for the process's lifetime.
        actuator_factory=functools.cache(lambda: build_actuator(engine, settings)),
        recommendations=RecommendationCache(
            engine,
            lambda slo, model: recommend(engine, settings, slo, model),
            ttl_s=settings.service.recommendation_cache_s,
        ),
    )


def app_for(engine: Engine, settings: Settings, **extras: Any) -> FastAPI:
    context = build_context(engine, settings)
    context.extras.update(extras)
    return create_app(context)
