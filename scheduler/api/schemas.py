"""HTTP shapes (requests ``<Verb><Noun>Request``, responses ``<Noun>Response``).

Every number a client sends is finite and bounded, every string fits its column on SQLite and
PostgreSQL alike (the column lengths of :mod:`scheduler.models`), and every time lies within
:data:`EARLIEST` .. :data:`LATEST`, so that nothing a client sends reaches the database in a
shape one backend refuses and the other stores silently.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: The times the service accepts (an EC2 event, a plan's data): far inside what Python's
#: datetime and both databases hold after any UTC offset is applied.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
#: Bounds of a hand-made plan: the dearest EC2 instance costs about 400 USD/h on demand.
MAX_PRICE_USD_PER_HOUR = 10_000.0
MAX_TOKENS_PER_SECOND = 1e9
#: How deep a JSON payload stored as is (an EC2 event) may nest.
MAX_JSON_DEPTH = 32


def _in_supported_range(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(
            f"time must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC); "
            "send an ISO 8601 time such as 2026-12-06T22:00:00Z"
        )
    return utc


SupportedDatetime = Annotated[datetime, AfterValidator(_in_supported_range)]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    # PostgreSQL refuses NUL in text (a 500 before); no name the service stores needs controls.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, newline, ...)")
    return value


#: A name the service stores or looks up in a text column: no control characters.
Name = Annotated[str, AfterValidator(_printable)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AllocationBody(_Strict):
    region: Name = Field(min_length=1, max_length=32)
    zone: Name = Field(default="", max_length=32, description="AZ ID; empty for on-demand")
    availability_zone: Name | None = Field(default=None, max_length=32)
    availability_zone_id: Name | None = Field(default=None, max_length=32)
    instance_type: Name = Field(min_length=1, max_length=64)
    market: Literal["spot", "on-demand"]
    count: int = Field(ge=0, le=1000)
    price_usd_per_hour_each: float = Field(default=0.0, ge=0, le=MAX_PRICE_USD_PER_HOUR)
    tokens_per_second_each: float = Field(default=0.0, ge=0, le=MAX_TOKENS_PER_SECOND)


class CreatePlanRequest(_Strict):
    slo: Name = Field(
        description="Throughput SLO, e.g. '500tok/s'", examples=["500tok/s"], max_length=64
    )
    model: Name | None = Field(
        default=None, description="Model served (default: configured)", max_length=256
    )
    markets: Literal["any", "spot", "on-demand"] | None = None
    allocations: list[AllocationBody] | None = Field(
        default=None,
        description="A hand-made target fleet; when given, the planner is not asked.",
        max_length=200,
    )


class ApplyPlanRequest(_Strict):
    dry_run: bool = False


class Ec2EventDetail(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    instance_id: Name = Field(alias="instance-id", min_length=1, max_length=32)


class PostEc2EventRequest(BaseModel):
    """An EventBridge EC2 event as EventBridge sends it (other keys are kept as they are)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)

    id: Name = Field(min_length=1, max_length=64, description="EventBridge event id")
    detail_type: Literal[
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
    ] = Field(alias="detail-type")
    region: Name = Field(min_length=1, max_length=32)
    time: SupportedDatetime
    detail: Ec2EventDetail

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        _check_json(data, "event", 0)
        return data


def _check_json(value: Any, where: str, depth: int) -> None:
    """Refuse what one database would store and the other refuse: non-finite numbers, NUL
    characters, and nesting past :data:`MAX_JSON_DEPTH`."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: numbers must be finite")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where}: must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                raise ValueError(f"{where}: keys must not contain NUL characters")
            _check_json(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", depth + 1)


class AllocationResponse(BaseModel):
    region: str
    zone: str
    instance_type: str
    market: str
    count: int
    availability_zone: str | None = None
    availability_zone_id: str | None = None
    price_usd_per_hour_each: float = 0.0
    tokens_per_second_each: float = 0.0


class PlanResponse(BaseModel):
    id: int
    created_at: datetime
    service: str
    model: str
    slo_tokens_per_second: float
    origin: str
    cost_usd_per_hour: float
    applied_at: datetime | None
    allocations: list[AllocationResponse]
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


class PlanAllocation(BaseModel):
    """One pool of a recommended plan (``scheduler plan --format json``'s ``allocations``)."""

    region: str
    availability_zone: str | None
    availability_zone_id: str | None
    zone: str
    instance_type: str
    market: Literal["spot", "on-demand"]
    count: int
    tokens_per_second_each: float
    price_usd_per_hour_each: float
    expected_cost_usd_per_hour_each: float
    usd_per_hour_per_tokens_per_second: float
    interruption_band: str | None
    placement_score: int | None
    cap: float | None
    cap_source: str
    goodput_source: str
    vcpus_each: int
    accelerator: str


class PlanBaseline(BaseModel):
    description: str
    cost_usd_per_hour: float | None
    tokens_per_second: float | None
    saving_usd_per_hour: float | None
    saving_pct: float | None
    allocations: list[PlanAllocation]


class PlanBinding(BaseModel):
    constraint: str
    explanation: str


class PlanDataAge(BaseModel):
    kind: str
    sources: list[str]
    oldest_observed_at: datetime | None
    newest_observed_at: datetime | None
    age_hours: float | None


class RecommendationResponse(BaseModel):
    """The planner's JSON (as ``scheduler plan --format json``) and where its facts came from."""

    model: str
    as_of: datetime
    hedge: str
    slo_tokens_per_second: float
    required_tokens_per_second: float
    tokens_per_second: float
    tokens_per_second_after_worst_loss: float
    worst_loss: str | None
    cost_usd_per_hour: float
    price_usd_per_hour: float
    interruption_usd_per_hour: float
    switching_usd_per_hour: float
    usd_per_million_tokens: float
    allocations: list[PlanAllocation]
    baselines: dict[str, PlanBaseline]
    binding: list[PlanBinding]
    data: list[PlanDataAge]
    warnings: list[str]
    candidates: int
    timing_s: dict[str, float]
    provenance: list[str] = Field(
        description="Every source behind the plan's facts (sample: the embedded sample market)"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="What the service did first, e.g. loaded the embedded sample market",
    )


class PoolPriceResponse(BaseModel):
    """One spot pool's price statistics (``scheduler oracle stats --format json``)."""

    region: str
    zone: str
    availability_zone: str | None
    availability_zone_id: str | None
    instance_type: str
    as_of: datetime
    source: str | None
    sample: bool
    current_price_usd_per_hour: float | None
    mean_price_usd_per_hour_7d: float | None
    mean_price_usd_per_hour_30d: float | None
    mean_price_usd_per_hour_90d: float | None
    p95_price_usd_per_hour_90d: float | None
    max_price_usd_per_hour_90d: float | None
    volatility_90d: float | None
    share_above_80pct_on_demand_90d: float | None
    changes_90d: int | None
    on_demand_price_usd_per_hour: float | None
    placement_scores: dict[str, int]
    interruption_band_index: int | None
    interruption_band_label: str | None
    savings_pct: float | None
    price_source: str | None
    price_observed_at: datetime | None
    price_age_s: float | None
    on_demand_source: str | None
    on_demand_observed_at: datetime | None
    on_demand_age_s: float | None
    placement_source: str | None
    placement_observed_at: datetime | None
    placement_age_s: float | None
    advisor_source: str | None
    advisor_observed_at: datetime | None
    advisor_age_s: float | None


class BenchmarkResponse(BaseModel):
    id: int
    model: str
    instance_type: str
    goodput_tokens_per_second: float | None
    workload_id: str | None
    source: str
    observed_at: datetime
    status: str


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    revision: str


class ErrorResponse(BaseModel):
    code: str
    message: str
    request_id: str | None = Field(
        default=None, description="Present on internal errors: quote it when reporting"
    )
