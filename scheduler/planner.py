"""The planner: the cheapest pool mix that meets a throughput SLO, explained.

:func:`make_plan` reads the oracle (:mod:`scheduler.planning.load`), turns its facts into priced
and capped candidate pools (:mod:`scheduler.planning.candidates`), builds and solves the MILP
(:mod:`scheduler.planning.problem`, :mod:`scheduler.solver`, where the mathematics is written
out), and explains the answer: binding constraints, baselines on the same data
(:mod:`scheduler.planning.baselines`), and the source and age of every kind of fact
(:mod:`scheduler.planning.explain`). :func:`plan_from_data` is the same without a database.

Risk, learned: each spot pool's hazard ``lambda_p`` (losses per held hour) and launch
availability ``a_p`` are the Advisor band's prior updated by what was observed of the pool up
to ``as_of`` (:mod:`oracle.risk`; ``PlanningData.observations``). The MILP's cost of a pool is
its price plus the restart cost of its losses, ``lambda_p x replacement time x replacement
price``. The hedge is sized to ``planner.availability_target``: under ``hedge = "auto"`` the plan
is solved with the AZ hedge and its attainment estimated (:mod:`scheduler.planning.attainment`:
AZ outages ``min(1, lambda_p tau)``, region shocks, pairs); only when that misses the
target is it solved again surviving any two AZs (``two-az``) and a region, and the cheapest of
those meeting the target kept, priced as prices, switching, and the expected SLO deficit x its
price (``planner.deficit_price_multiple``); when none meets it, the cheapest so priced of all.
Any other ``planner.hedge`` (``--hedge``) fixes the depth.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.engine import Engine

from oracle.errors import OracleError
from scheduler.config import PlannerConfig
from scheduler.errors import ConflictError
from scheduler.planning import explain
from scheduler.planning.attainment import PlannedPool, PlanRisk, plan_risk
from scheduler.planning.baselines import compute_baselines
from scheduler.planning.candidates import CandidateSet, PlanningData, build_candidates
from scheduler.planning.load import load_planning_data
from scheduler.planning.mix import WorkloadMix, routed_buckets
from scheduler.planning.model import (
    Allocation,
    Baseline,
    Binding,
    DataAge,
    Plan,
    PoolKey,
    RunningInstance,
)
from scheduler.planning.problem import PlanningProblem, allocations, build_problem
from scheduler.solver import (
    TIE_BREAK,
    Infeasibility,
    Solution,
    cost_lower_bound,
    solve,
    solve_below,
)

__all__ = [
    "Allocation",
    "Baseline",
    "Binding",
    "DataAge",
    "InfeasiblePlanError",
    "Plan",
    "PoolKey",
    "RunningInstance",
    "cost_bound_usd_per_hour",
    "make_plan",
    "plan_from_data",
]


class InfeasiblePlanError(OracleError, ConflictError):
    """No plan meets the SLO under the constraints; the message says which one and how to relax
    it. The command line exits with code 1; the API answers 409 ``infeasible``."""

    exit_code = 1
    code = "infeasible"


def make_plan(
    engine: Engine,
    *,
    config: PlannerConfig,
    slo_tokens_per_second: float,
    model: str | None = None,
    as_of: datetime | None = None,
    running: Sequence[RunningInstance] = (),
    exclude_pools: Collection[PoolKey] = (),
    workload: str | None = None,
) -> Plan:
    """Plan ``model`` (default: the configured one) at the SLO on the data known at ``as_of``;
    ``workload``: a request mix (a preset or a file, :mod:`oracle.mix`) to plan for per bucket."""
    started = time.perf_counter()
    data = load_planning_data(
        engine, config=config, model=model or config.model, as_of=as_of, workload=workload
    )
    load_s = time.perf_counter() - started
    plan = plan_from_data(
        data,
        config=config,
        slo_tokens_per_second=slo_tokens_per_second,
        running=running,
        exclude_pools=exclude_pools,
    )
    plan.timing_s["load"] = load_s
    plan.timing_s["total"] = time.perf_counter() - started
    return plan


def cost_bound_usd_per_hour(
    data: PlanningData,
    candidate_set: CandidateSet,
    *,
    config: PlannerConfig,
    slo_tokens_per_second: float,
    enough: float | None = None,
) -> float | None:
    """A lower bound on the expected cost (USD/h, switching aside) of any plan
    :func:`plan_from_data` could return on the same facts and candidates, from one LP; ``None``
    when no plan exists. A rebalancer compares it with what runs: when even the bound does not
    save enough, no plan will, and the MILP need not be solved. ``enough``: a cheaper bound at
    or above this figure will do (see :func:`scheduler.solver.cost_lower_bound`)."""
    if not candidate_set.candidates:
        return None
    planning = build_problem(
        candidate_set.candidates,
        config=config,
        quotas=data.quotas,
        slo_tokens_per_second=slo_tokens_per_second,
        mix=data.mix,
    )
    return cost_lower_bound(planning.problem, enough=enough)


def plan_from_data(
    data: PlanningData,
    *,
    config: PlannerConfig,
    slo_tokens_per_second: float,
    running: Sequence[RunningInstance] = (),
    exclude_pools: Collection[PoolKey] = (),
    with_baselines: bool = True,
    candidate_set: CandidateSet | None = None,
) -> Plan:
    """The plan on facts already loaded; raises :class:`InfeasiblePlanError` when none exists.

    ``candidate_set``: the pools already built from ``data`` by :func:`build_candidates` with
    the same ``config`` and ``exclude_pools`` (a caller that needs them too builds them once).
    """
    if slo_tokens_per_second <= 0:
        raise OracleError(f"the SLO must be above 0 tok/s, got {slo_tokens_per_second}")
    started = time.perf_counter()
    if candidate_set is None:
        candidate_set = build_candidates(data, config, exclude_pools=exclude_pools)
    if not candidate_set.candidates:
        raise InfeasiblePlanError(
            explain.no_candidates_message(candidate_set, data.model, config, data.as_of)
        )
    running_counts: dict[PoolKey, int] = {}
    for instance in running:
        running_counts[instance.pool] = running_counts.get(instance.pool, 0) + instance.count
    build_s = time.perf_counter() - started
    option = _hedged_plan(
        candidate_set,
        data=data,
        config=config,
        slo_tokens_per_second=slo_tokens_per_second,
        running=running_counts,
        mix=data.mix,
    )
    planning, solution, risk = option.planning, option.solution, option.risk
    counts = solution.counts.tolist()
    chosen = [c for c, count in zip(planning.candidates, counts, strict=True) if count > 0]
    baselines_started = time.perf_counter()
    baselines: dict[str, Baseline] = {}
    if with_baselines:
        baselines = compute_baselines(
            planning,
            config=config,
            quotas=data.quotas,
            slo_tokens_per_second=slo_tokens_per_second,
            plan_cost_usd_per_hour=solution.cost_usd_per_hour,
        )
    baselines_s = time.perf_counter() - baselines_started
    ages = explain.data_ages(chosen, planning, data.as_of)
    interruption = sum(
        c.interruption_usd_per_hour * count
        for c, count in zip(planning.candidates, counts, strict=True)
    )
    return Plan(
        model=data.model,
        as_of=data.as_of,
        hedge=option.depth,
        slo_tokens_per_second=slo_tokens_per_second,
        required_tokens_per_second=planning.problem.required_tokens_per_second,
        allocations=allocations(
            planning.candidates, counts, routed_buckets(planning.problem, solution.counts)
        ),
        tokens_per_second=solution.tokens_per_second,
        tokens_per_second_after_worst_loss=solution.tokens_per_second_after_worst_loss,
        worst_loss=solution.worst_loss_group,
        cost_usd_per_hour=solution.cost_usd_per_hour,
        price_usd_per_hour=solution.cost_usd_per_hour - interruption,
        interruption_usd_per_hour=interruption,
        switching_usd_per_hour=solution.switching_usd_per_hour,
        binding=explain.bindings(planning, solution),
        baselines=baselines,
        data=ages,
        warnings=explain.warnings(chosen, ages, config),
        candidates=len(planning.candidates),
        timing_s={"build": build_s, "solve": option.solve_s, "baselines": baselines_s},
        availability_target=config.availability_target,
        estimated_attainment=risk.attainment,
        expected_deficit_tokens_per_second=risk.expected_deficit_tokens_per_second,
        deficit_usd_per_hour=option.deficit_usd_per_hour,
        hedge_reason=option.reason,
        recheck=functools.partial(explain.recheck, planning, solution, config),
        workload=data.mix.to_dict() if data.mix is not None else None,
    )


@dataclass(frozen=True)
class _Option:
    depth: str
    planning: PlanningProblem
    solution: Solution
    risk: PlanRisk
    deficit_usd_per_hour: float
    solve_s: float
    reason: str = ""

    @property
    def priced_usd_per_hour(self) -> float:
        """What choosing this depth costs an hour: prices, switching and the priced deficit."""
        solution = self.solution
        return (
            solution.cost_usd_per_hour + solution.switching_usd_per_hour + self.deficit_usd_per_hour
        )


def _hedged_plan(
    candidate_set: CandidateSet,
    *,
    data: PlanningData,
    config: PlannerConfig,
    slo_tokens_per_second: float,
    running: dict[PoolKey, int],
    mix: WorkloadMix | None = None,
) -> _Option:
    """Solve at the configured hedge depth; with ``auto``, at ``az`` and, only when its
    estimated attainment misses ``planner.availability_target``, also at ``region`` and
    ``two-az``: the cheapest of those that meet the target, priced as prices, switching (a
    depth that keeps the running fleet pays none) and the priced deficit; else the cheapest so
    priced of all. Deeper hedges never cost less in prices and switching (a plan that survives
    a region's or two AZs' loss survives an AZ's, so the AZ MILP could choose it), so an AZ
    plan that meets the target is kept without trying them.

    The two-loss MILP is by far the slowest of the three (its LP relaxation sits ~20% below
    its optimum on the sample market at 2,000 tok/s, where a replan's two-az MILP took ~1 s
    against ~0.05 s for the others), so it is solved last and only when it could be chosen:
    when the ``region`` plan meets the target, a ``two-az`` plan can win only by costing less
    than it, and every ``two-az`` plan costs at least the LP bound of
    :func:`scheduler.solver.cost_lower_bound` (switching and deficit only add); when that bound
    reaches the best priced plan that meets the target, the MILP is skipped; otherwise it is
    solved only below that price (:func:`scheduler.solver.solve_below`: a plan above it could
    not win, so its search stops there; in ten days at 2,000 tok/s in the calibrated world,
    127 such solves found no two-az plan cheaper, in 10.0 s against 27.5 s for the full MILPs).
    The choice is the same as solving all three (a tie goes to ``region`` either way)."""
    target = config.availability_target
    deficit_price = _deficit_price(candidate_set, config)
    solve_s = 0.0

    built: dict[str, PlanningProblem] = {}

    def problem(depth: str) -> PlanningProblem:
        """The problem at ``depth``, built once (the two-az bound and its MILP share it)."""
        if depth not in built:
            built[depth] = build_problem(
                candidate_set.candidates,
                config=config,
                quotas=data.quotas,
                slo_tokens_per_second=slo_tokens_per_second,
                running=running,
                depth=depth,
                mix=mix,
            )
        return built[depth]

    def attempt(depth: str, below: float | None = None) -> _Option | Infeasibility | None:
        """The plan at ``depth``, why none exists, or (with ``below``) None when none has an
        objective below that figure."""
        nonlocal solve_s
        planning = problem(depth)
        started = time.perf_counter()
        # With ``below``: up to the tie-break's share above it, as a plan that costs less than
        # ``below`` may carry it in its objective.
        solution = (
            solve(planning.problem)
            if below is None
            else solve_below(planning.problem, below * (1 + TIE_BREAK))
        )
        solve_s += time.perf_counter() - started
        if solution is None:
            return None
        if solution.infeasibility is not None:
            return solution.infeasibility
        risk = _risk(planning, solution, config, slo_tokens_per_second)
        deficit = risk.expected_deficit_tokens_per_second * deficit_price
        return _Option(depth, planning, solution, risk, deficit, 0.0)

    first_depth = "az" if config.hedge == "auto" else config.hedge
    first = attempt(first_depth)
    assert first is not None
    if isinstance(first, Infeasibility):
        message = explain.infeasibility_message(problem(first_depth), first, config)
        raise InfeasiblePlanError(message)
    if config.hedge != "auto":
        return replace(first, solve_s=solve_s, reason=f"planner.hedge = {config.hedge!r}")
    if first.risk.attainment >= target:
        reason = (
            f"the AZ hedge meets the target: estimated {_pct(first.risk.attainment)} "
            f">= {_pct(target)}"
        )
        return replace(first, solve_s=solve_s, reason=reason)
    options = [first]
    region = attempt("region")
    if isinstance(region, _Option):
        options.append(region)
    meeting_prices = [o.priced_usd_per_hour for o in options if o.risk.attainment >= target]
    best_meeting = min(meeting_prices, default=None)
    if best_meeting is None or not _two_az_cannot_win(best_meeting, lambda: problem("two-az")):
        two_az = attempt("two-az", below=best_meeting)
        if isinstance(two_az, _Option):
            options.append(two_az)
    meeting = [o for o in options if o.risk.attainment >= target]
    best = min(meeting or options, key=lambda o: (o.priced_usd_per_hour, o.depth))
    missed = (
        f"the AZ hedge misses the target (estimated {_pct(first.risk.attainment)} < "
        f"{_pct(target)}; most likely miss: {first.risk.worst_event})"
    )
    if meeting:
        reason = f"{missed}; {best.depth} meets it at {_pct(best.risk.attainment)}"
    else:
        reason = (
            f"{missed}; no hedge depth meets it: {best.depth} is the cheapest with the deficit "
            f"priced ({_pct(best.risk.attainment)})"
        )
    return replace(best, solve_s=solve_s, reason=reason)


def _two_az_cannot_win(best: float, two_az: Callable[[], PlanningProblem]) -> bool:
    """Whether no ``two-az`` plan can be chosen over an option that meets the target at the
    priced cost ``best``: the ``two-az`` LP bound (switching and deficit left out: both only
    add) reaches it. ``two_az`` builds the problem, only when it is needed."""
    bound = cost_lower_bound(two_az().problem, enough=best)
    return bound is None or bound >= best


def _risk(
    planning: PlanningProblem, solution: Solution, config: PlannerConfig, slo: float
) -> PlanRisk:
    pools = [
        PlannedPool(
            region=c.pool.region,
            zone=c.pool.zone,
            market=c.pool.market,
            tokens_per_second=c.tokens_per_second * int(count),
            hazard_per_hour=c.hazard_per_hour,
        )
        for c, count in zip(planning.candidates, solution.counts, strict=True)
        if count > 0
    ]
    return plan_risk(
        pools,
        slo_tokens_per_second=slo,
        replacement_hours=config.replacement_time_s / 3600.0,
        region_correlation=config.region_correlation,
    )


def _deficit_price(candidate_set: CandidateSet, config: PlannerConfig) -> float:
    """USD per unserved tok/s per hour: ``planner.deficit_price_multiple`` times the cheapest
    on-demand cost of a tok/s (of any pool when no on-demand pool is a candidate)."""
    pools = [c for c in candidate_set.candidates if c.pool.market == "on-demand"]
    pools = pools or list(candidate_set.candidates)
    cheapest = min(c.expected_cost_usd_per_hour / c.tokens_per_second for c in pools)
    return config.deficit_price_multiple * cheapest


def _pct(share: float) -> str:
    return f"{100 * share:.3f}%"
