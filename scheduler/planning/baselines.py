"""The plans a simpler tool would pick on the same data, to show what the planner saves.

- ``all_on_demand``: the cheapest plan with on-demand pools only (no interruptions to hedge);
- ``cheapest_single_spot_pool``: the cheapest single spot pool that alone reaches the SLO, with
  no hedge (what a catalog optimiser picks);
- ``cheapest_single_instance_type``: the cheapest plan that uses one instance type only, under
  every constraint of the real plan (hedge included).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from oracle.quotas import VcpuQuota
from scheduler.config import PlannerConfig
from scheduler.planning.candidates import Candidate
from scheduler.planning.mix import WorkloadMix
from scheduler.planning.model import Baseline
from scheduler.planning.problem import PlanningProblem, allocations, build_problem
from scheduler.solver import solve


def compute_baselines(
    planning: PlanningProblem,
    *,
    config: PlannerConfig,
    quotas: Mapping[tuple[str, str], VcpuQuota],
    slo_tokens_per_second: float,
    plan_cost_usd_per_hour: float | None,
) -> dict[str, Baseline]:
    baselines = [
        _all_on_demand(planning, config, quotas, slo_tokens_per_second),
        _single_spot_pool(planning),
        _single_instance_type(planning, config, quotas, slo_tokens_per_second),
    ]
    return {b.name: _with_saving(b, plan_cost_usd_per_hour) for b in baselines}


def _all_on_demand(
    planning: PlanningProblem,
    config: PlannerConfig,
    quotas: Mapping[tuple[str, str], VcpuQuota],
    slo: float,
) -> Baseline:
    description = "cheapest plan with on-demand instances only"
    subset = [c for c in planning.candidates if c.pool.market == "on-demand"]
    return _solved("all_on_demand", description, subset, config, quotas, slo, planning.mix)


def _single_spot_pool(planning: PlanningProblem) -> Baseline:
    description = "cheapest single spot pool that reaches the SLO alone, without a hedge"
    problem = planning.problem
    required = problem.required_tokens_per_second
    best: tuple[float, int, int] | None = None
    for p, candidate in enumerate(planning.candidates):
        if candidate.pool.market != "spot":
            continue
        each = _rate_alone(planning, candidate)
        if each <= 0:
            continue
        count = math.ceil(required / each - 1e-9)
        if count > problem.upper[p]:
            continue
        cost = count * candidate.expected_cost_usd_per_hour
        if best is None or cost < best[0]:
            best = (cost, p, count)
    if best is None:
        return Baseline("cheapest_single_spot_pool", description, None, None)
    cost, p, count = best
    candidate = planning.candidates[p]
    return Baseline(
        "cheapest_single_spot_pool",
        description,
        cost,
        count * _rate_alone(planning, candidate),
        tuple(allocations([candidate], [count])),
    )


def _rate_alone(planning: PlanningProblem, candidate: Candidate) -> float:
    """tok/s of one instance serving all the load alone (the whole mix, with one)."""
    if planning.mix is None:
        return candidate.tokens_per_second
    return planning.mix.rate_alone(candidate.pool.instance_type)


def _single_instance_type(
    planning: PlanningProblem,
    config: PlannerConfig,
    quotas: Mapping[tuple[str, str], VcpuQuota],
    slo: float,
) -> Baseline:
    description = "cheapest plan with one instance type only, under the same constraints"
    by_type: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in planning.candidates:
        by_type[candidate.pool.instance_type].append(candidate)
    required = planning.problem.required_tokens_per_second

    def lower_bound(group: Sequence[Candidate]) -> float:
        cheapest = min(c.expected_cost_usd_per_hour for c in group)
        return math.ceil(required / group[0].tokens_per_second - 1e-9) * cheapest

    best = Baseline("cheapest_single_instance_type", description, None, None)
    # Solve types in order of their lower bound and stop once no type can beat the best.
    for group in sorted(by_type.values(), key=lower_bound):
        if best.cost_usd_per_hour is not None and lower_bound(group) >= best.cost_usd_per_hour:
            break
        found = _solved(
            "cheapest_single_instance_type", description, group, config, quotas, slo, planning.mix
        )
        if found.cost_usd_per_hour is not None and (
            best.cost_usd_per_hour is None or found.cost_usd_per_hour < best.cost_usd_per_hour
        ):
            best = found
    return best


def _solved(
    name: str,
    description: str,
    subset: Sequence[Candidate],
    config: PlannerConfig,
    quotas: Mapping[tuple[str, str], VcpuQuota],
    slo: float,
    mix: WorkloadMix | None = None,
) -> Baseline:
    if not subset:
        return Baseline(name, description, None, None)
    planning = build_problem(
        subset, config=config, quotas=quotas, slo_tokens_per_second=slo, mix=mix
    )
    solution = solve(planning.problem)
    if solution.status != "optimal":
        return Baseline(name, description, None, None)
    return Baseline(
        name,
        description,
        solution.cost_usd_per_hour,
        solution.tokens_per_second,
        tuple(allocations(subset, solution.counts.tolist())),
    )


def _with_saving(baseline: Baseline, plan_cost: float | None) -> Baseline:
    if baseline.cost_usd_per_hour is None or plan_cost is None:
        return baseline
    saving = baseline.cost_usd_per_hour - plan_cost
    pct = 100.0 * saving / baseline.cost_usd_per_hour if baseline.cost_usd_per_hour else 0.0
    return Baseline(
        baseline.name,
        baseline.description,
        baseline.cost_usd_per_hour,
        baseline.tokens_per_second,
        baseline.allocations,
        saving,
        pct,
    )
