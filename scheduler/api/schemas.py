"""HTTP shapes (requests ``<Verb><Noun>Request``, responses ``<Noun>Response``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AllocationBody(_Strict):
    region: str = Field(min_length=1, max_length=32)
    zone: str = Field(default="", max_length=32, description="AZ ID; empty for on-demand")
    availability_zone: str | None = None
    availability_zone_id: str | None = None
    instance_type: str = Field(min_length=1, max_length=64)
    market: Literal["spot", "on-demand"]
    count: int = Field(ge=0, le=1000)
    price_usd_per_hour_each: float = Field(default=0.0, ge=0)
    tokens_per_second_each: float = Field(default=0.0, ge=0)


class CreatePlanRequest(_Strict):
    slo: str = Field(description="Throughput SLO, e.g. '500tok/s'", examples=["500tok/s"])
    model: str | None = Field(default=None, description="Model served (default: configured)")
    markets: Literal["any", "spot", "on-demand"] | None = None
    allocations: list[AllocationBody] | None = Field(
        default=None,
        description="A hand-made target fleet; when given, the planner is not asked.",
        max_length=200,
    )


class ApplyPlanRequest(_Strict):
    dry_run: bool = False


class PlanResponse(BaseModel):
    id: int
    created_at: datetime
    service: str
    model: str
    slo_tokens_per_second: float
    origin: str
    cost_usd_per_hour: float
    applied_at: datetime | None
    allocations: list[dict[str, Any]]
    document: dict[str, Any]


class PlannedAction(BaseModel):
    kind: str
    pool: str
    replica_id: int | None
    reason: str


class ApplyResponse(BaseModel):
    plan_id: int
    dry_run: bool
    status: Literal["planned", "accepted"]
    actions: list[PlannedAction]


class ReplicaResponse(BaseModel):
    id: int
    service: str
    plan_id: int | None
    pool: str
    region: str
    zone: str
    availability_zone: str | None
    instance_type: str
    market: str
    state: str
    state_reason: str
    instance_id: str | None
    endpoint: str | None
    price_usd_per_hour: float
    tokens_per_second: float
    target_registered: bool
    created_at: datetime
    launched_at: datetime | None
    ready_at: datetime | None
    terminated_at: datetime | None


class ActionResponse(BaseModel):
    id: int
    created_at: datetime
    plan_id: int | None
    replica_id: int | None
    kind: str
    status: str
    reason: str
    dry_run: bool
    details: dict[str, Any]
    error: str | None
    finished_at: datetime | None


class EventResponse(BaseModel):
    event_id: str
    duplicate: bool = False
    result: dict[str, Any]


class ErrorResponse(BaseModel):
    code: str
    message: str
