"""The planner's vocabulary: pools, the running fleet, allocations and the explained plan.

``Plan.to_dict()`` is the documented JSON of ``scheduler plan --format json``:

- ``slo_tokens_per_second``, ``required_tokens_per_second`` (SLO plus headroom),
  ``tokens_per_second`` (planned capacity), ``tokens_per_second_after_worst_loss`` and
  ``worst_loss`` (the AZ or region whose spot loss hurts most, null when no spot is planned);
- ``cost_usd_per_hour`` (expected: prices plus expected interruption cost),
  ``price_usd_per_hour`` (prices only), ``interruption_usd_per_hour``,
  ``switching_usd_per_hour`` (amortised start-up of new instances),
  ``usd_per_million_tokens`` (cost of serving the SLO rate for a million output tokens);
- ``allocations``: objects with ``region``, ``availability_zone``, ``availability_zone_id``,
  ``zone``, ``instance_type``, ``market`` (spot | on-demand), ``count``,
  ``tokens_per_second_each``, ``price_usd_per_hour_each``, ``expected_cost_usd_per_hour_each``,
  ``usd_per_hour_per_tokens_per_second``, ``interruption_band``, ``placement_score``,
  ``cap``, ``cap_source``, ``goodput_source``; with ``--workload``, also ``buckets`` (the tok/s
  of each workload bucket the pool serves in the plan);
- ``baselines``: ``all_on_demand``, ``cheapest_single_spot_pool``,
  ``cheapest_single_instance_type``, each with ``cost_usd_per_hour`` (null when no such plan
  exists), ``tokens_per_second``, ``description``, ``saving_usd_per_hour``, ``saving_pct``;
- ``binding``: objects with ``constraint`` and ``explanation``;
- ``data``: per fact kind, its ``sources``, ``oldest_observed_at``, ``newest_observed_at`` and
  ``age_hours`` (of the newest);
  ``warnings``: plain sentences; ``model``, ``as_of``, ``hedge`` (the depth used: az, region,
  two-az or none), ``candidate_count``, ``timing_s``;
- risk: ``availability_target``, ``estimated_attainment`` (share of time the plan carries the
  SLO, by the risk model of :mod:`scheduler.planning.attainment`),
  ``expected_deficit_tokens_per_second``, ``deficit_usd_per_hour`` (that deficit priced) and
  ``hedge_reason`` (why this depth);
- ``candidates``: every pool the solver chose from, enough to rebuild the MILP from the JSON
  alone: ``region``, ``availability_zone``, ``zone``, ``instance_type``, ``market``,
  ``expected_cost_usd_per_hour_each`` (the objective's coefficient),
  ``price_usd_per_hour_each``, ``interruption_cost_usd_per_hour_each``,
  ``tokens_per_second_each``, ``cap`` (the largest count; null: only quotas bound it),
  ``cap_reason`` (placement score, quota, pool share), ``vcpus_each``, ``quota``
  (the ``code:region`` of its quota row), ``hedge_group`` (its AZ or region; null for
  on-demand) and ``hazard_per_hour`` (the learned risk behind the interruption cost); pools
  marked unavailable after a capacity error are not candidates;
- ``limits``: ``slo_tokens_per_second``, ``required_tokens_per_second`` (with the headroom),
  ``headroom_fraction``, ``hedge`` (az | two-az | region | none), ``hedge_groups`` (az |
  region | null), ``hedge_losses`` (groups lost at once the SLO survives), ``quotas`` (per
  code and region: ``limit_vcpus``, ``source``, ``observed_at``), ``max_pool_share``,
  ``budget_usd_per_hour`` (null: none);
- ``solver``: ``backend``, ``mip_gap``, ``mip_rel_gap_tolerance``, ``solve_s``,
  ``proven_optimal``.
- with ``--workload``, ``workload``: ``workload_id``, ``source`` and ``buckets`` (each bucket's
  share of the output tokens); ``tokens_per_second`` and the after-loss figure are then in the
  mix's proportions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

Market = Literal["spot", "on-demand"]


class PoolKey(NamedTuple):
    """A pool. Spot pools are per zone (AZ ID when known, else AZ name); on-demand pools are per
    region, with ``zone`` empty (any zone of the region that offers the type)."""

    region: str
    zone: str
    instance_type: str
    market: str


@dataclass(frozen=True)
class RunningInstance:
    pool: PoolKey
    count: int


@dataclass(frozen=True)
class Allocation:
    pool: PoolKey
    availability_zone: str | None
    availability_zone_id: str | None
    count: int
    tokens_per_second_each: float
    price_usd_per_hour_each: float
    expected_cost_usd_per_hour_each: float = 0.0
    interruption_band: str | None = None
    placement_score: int | None = None
    cap: float | None = None
    cap_source: str = ""
    goodput_source: str = ""
    vcpus_each: int = 0
    accelerator: str = ""
    #: With a request mix: tok/s of each workload bucket this pool serves in the plan.
    buckets: dict[str, float] = field(default_factory=dict)

    @property
    def usd_per_hour_per_tokens_per_second(self) -> float:
        return self.expected_cost_usd_per_hour_each / self.tokens_per_second_each

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.pool.region,
            "availability_zone": self.availability_zone,
            "availability_zone_id": self.availability_zone_id,
            "zone": self.pool.zone,
            "instance_type": self.pool.instance_type,
            "market": self.pool.market,
            "count": self.count,
            "tokens_per_second_each": self.tokens_per_second_each,
            "price_usd_per_hour_each": self.price_usd_per_hour_each,
            "expected_cost_usd_per_hour_each": self.expected_cost_usd_per_hour_each,
            "usd_per_hour_per_tokens_per_second": self.usd_per_hour_per_tokens_per_second,
            "interruption_band": self.interruption_band,
            "placement_score": self.placement_score,
            "cap": self.cap,
            "cap_source": self.cap_source,
            "goodput_source": self.goodput_source,
            "vcpus_each": self.vcpus_each,
            "accelerator": self.accelerator,
            **({"buckets": dict(self.buckets)} if self.buckets else {}),
        }


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    cost_usd_per_hour: float | None
    tokens_per_second: float | None
    allocations: tuple[Allocation, ...] = ()
    saving_usd_per_hour: float | None = None
    saving_pct: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "cost_usd_per_hour": self.cost_usd_per_hour,
            "tokens_per_second": self.tokens_per_second,
            "saving_usd_per_hour": self.saving_usd_per_hour,
            "saving_pct": self.saving_pct,
            "allocations": [allocation.to_dict() for allocation in self.allocations],
        }


@dataclass(frozen=True)
class Binding:
    constraint: str
    explanation: str


@dataclass(frozen=True)
class DataAge:
    """Where one kind of fact behind the chosen pools came from, and how old it is."""

    kind: str
    sources: tuple[str, ...]
    oldest_observed_at: datetime | None
    newest_observed_at: datetime | None
    #: Hours from the newest such fact to the plan's ``as_of``.
    age_hours: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sources": list(self.sources),
            "oldest_observed_at": self.oldest_observed_at,
            "newest_observed_at": self.newest_observed_at,
            "age_hours": self.age_hours,
        }


@dataclass(frozen=True)
class Plan:
    model: str
    as_of: datetime
    hedge: str
    slo_tokens_per_second: float
    required_tokens_per_second: float
    allocations: list[Allocation]
    tokens_per_second: float
    tokens_per_second_after_worst_loss: float
    worst_loss: str | None
    cost_usd_per_hour: float
    price_usd_per_hour: float
    interruption_usd_per_hour: float
    switching_usd_per_hour: float
    binding: list[Binding]
    baselines: dict[str, Baseline]
    data: list[DataAge]
    warnings: list[str]
    candidates: int
    timing_s: dict[str, float] = field(default_factory=dict)
    #: The risk model's estimate (scheduler.planning.attainment) and why this hedge depth.
    availability_target: float | None = None
    estimated_attainment: float | None = None
    expected_deficit_tokens_per_second: float = 0.0
    deficit_usd_per_hour: float = 0.0
    hedge_reason: str = ""
    #: Makes the ``candidates``, ``limits`` and ``solver`` keys of :meth:`to_dict` (see
    #: :func:`scheduler.planning.explain.recheck`), only when asked: a replay that plans
    #: thousands of times never needs them.
    recheck: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    #: The request mix planned for (``WorkloadMix.to_dict()``); None: one number per type.
    workload: dict[str, Any] | None = None

    @property
    def usd_per_million_tokens(self) -> float:
        """What a million output tokens cost when the fleet serves exactly the SLO rate."""
        return self.cost_usd_per_hour / (self.slo_tokens_per_second * 3600) * 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "as_of": self.as_of,
            "hedge": self.hedge,
            "slo_tokens_per_second": self.slo_tokens_per_second,
            "required_tokens_per_second": self.required_tokens_per_second,
            "tokens_per_second": self.tokens_per_second,
            "tokens_per_second_after_worst_loss": self.tokens_per_second_after_worst_loss,
            "worst_loss": self.worst_loss,
            "cost_usd_per_hour": self.cost_usd_per_hour,
            "price_usd_per_hour": self.price_usd_per_hour,
            "interruption_usd_per_hour": self.interruption_usd_per_hour,
            "switching_usd_per_hour": self.switching_usd_per_hour,
            "usd_per_million_tokens": self.usd_per_million_tokens,
            "allocations": [allocation.to_dict() for allocation in self.allocations],
            "baselines": {name: baseline.to_dict() for name, baseline in self.baselines.items()},
            "binding": [
                {"constraint": b.constraint, "explanation": b.explanation} for b in self.binding
            ],
            "data": [age.to_dict() for age in self.data],
            "warnings": list(self.warnings),
            "candidate_count": self.candidates,
            **(self.recheck() if self.recheck else {"candidates": [], "limits": {}, "solver": {}}),
            "timing_s": dict(self.timing_s),
            "availability_target": self.availability_target,
            "estimated_attainment": self.estimated_attainment,
            "expected_deficit_tokens_per_second": self.expected_deficit_tokens_per_second,
            "deficit_usd_per_hour": self.deficit_usd_per_hour,
            "hedge_reason": self.hedge_reason,
            **({"workload": self.workload} if self.workload is not None else {}),
        }
