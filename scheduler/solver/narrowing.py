"""Exact narrowing of large models: the optimum found on a model over fewer pools that provably
holds it (restricted solves for a first plan, then reduced-cost fixing)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.backends import Run, highspy_module, run, run_highspy
from scheduler.solver.check import objective_usd_per_hour, violated
from scheduler.solver.model import Model, build_model, cost_upper_bounds, plan_columns
from scheduler.solver.problem import Problem, running_counts

#: From this many pools on, :func:`scheduler.solver.solve` first narrows the model exactly (see
#: :func:`solve_reduced`); on the 869-pool sample universe it halves the solver's CPU time.
REDUCE_FROM_POOLS = 200
#: Pools of least reduced cost the first plan of :func:`solve_reduced` may use (besides those
#: the LP relaxation uses).
LIKELY_POOLS = 48


def solve_reduced(
    problem: Problem,
    model: Model,
    *,
    time_limit_s: float | None = None,
    likely_pools: int = LIKELY_POOLS,
) -> Run | None:
    """The optimum of ``model``, found on a narrower model that provably holds it.

    1. The LP relaxation of the full model: its optimum z and reduced costs d_p.
    2. A feasible plan (the upper bound U): the same MILP restricted to the pools the LP uses
       and the ``likely_pools`` of least reduced cost (small, so fast); where those hold no
       plan, restricted to the cheapest pool per tok/s of each hedge group and of each
       on-demand quota row.
    3. Reduced-cost fixing: any plan with x_p >= 1 for a pool at 0 in the LP costs at least
       z + d_p (LP duality), so pools with d_p > U - z cannot be in a plan cheaper than U and
       are dropped. The full MILP is then solved over the pools left (cold: faster than from
       the plan), unless step 2 already searched all of them (its plan is then the optimum).

    Returns the full model's columns with the gap of the MILP that proved them, or None when
    the model is infeasible. Needs highspy (for the reduced costs).
    """
    highspy = highspy_module()
    n = problem.n
    relaxation = run_highspy(highspy, model, relax=True)
    if relaxation is None:
        return None
    assert relaxation.duals is not None
    values, duals = relaxation.values[:n], relaxation.duals[:n]
    first, searched = _likely_plan(problem, values, duals, likely_pools)
    if first is None:
        first, searched = _restricted_plan(problem), np.zeros(0, dtype=np.int64)
    if first is None:
        return run(model, time_limit_s=time_limit_s, backend="highspy")
    start_counts, start_gap = first
    start = plan_columns(problem, model, start_counts)
    upper_bound = float(model.c @ start)
    start_run = Run(start, upper_bound, start_gap)
    keep = _kept(values, duals, relaxation.objective, upper_bound)
    if np.all(np.isin(keep, searched)):
        # The first plan is the optimum over pools that include every pool left: it is the
        # optimum (the 869-pool universe at 5,000 tok/s: one MILP instead of two).
        return start_run
    narrow = subset(problem, keep)
    narrow_model = build_model(narrow)
    # No start here: HiGHS proves this optimum faster without one (10,000-pool cut: 7.8 s CPU
    # with the first plan as start, 2.9 s without; the first MILP is the other way round).
    result = run(narrow_model, time_limit_s=time_limit_s, backend="highspy")
    if result is None:  # cannot happen (the start is feasible there); keep the start
        return start_run
    return _on_every_pool(problem, model, keep, result)


def solve_limited(
    problem: Problem,
    limit: float,
    *,
    time_limit_s: float | None = None,
    reduce_from_pools: int = REDUCE_FROM_POOLS,
) -> Run | None:
    """The optimum of ``problem``'s model when its objective is at most ``limit`` (USD/h), else
    None: a caller that can use a plan only below a figure need not find one above it.

    The model gains the row ``c x <= limit``; HiGHS prunes every node whose bound reaches it, and
    proves no plan exists sooner than it would find and prove the optimum above it. From
    ``reduce_from_pools`` pools on, the limit is the upper bound U of
    :func:`solve_reduced`'s reduced-cost fixing (no first plan is needed: one above the limit
    is of no use), and the MILP is solved over the pools left. When the optimum lies below the
    limit, it is the optimum of the model without the row (it meets the row).
    """
    model = build_model(problem, objective_limit=limit)
    highspy = highspy_module()
    if highspy is None or problem.n < reduce_from_pools:
        return run(model, time_limit_s=time_limit_s)
    relaxation = run_highspy(highspy, model, relax=True)
    if relaxation is None:
        return None
    assert relaxation.duals is not None
    n = problem.n
    keep = _kept(relaxation.values[:n], relaxation.duals[:n], relaxation.objective, limit)
    narrow = subset(problem, keep)
    result = run(build_model(narrow, objective_limit=limit), time_limit_s=time_limit_s)
    if result is None:
        return None
    return _on_every_pool(problem, model, keep, result)


def _kept(
    values: NDArray[np.float64], reduced: NDArray[np.float64], lp_objective: float, upper: float
) -> NDArray[np.int64]:
    """The pools reduced-cost fixing keeps: any plan with ``x_p >= 1`` for a pool at 0 in the
    LP optimum ``lp_objective`` costs at least ``lp_objective + reduced_p`` (LP duality), so
    pools for which that exceeds ``upper`` cannot be in a plan costing at most ``upper``."""
    margin = 1e-6 * max(1.0, abs(upper))
    drop = (values <= 1e-9) & (reduced > upper - lp_objective + margin)
    return np.flatnonzero(~drop)


def _on_every_pool(problem: Problem, model: Model, keep: NDArray[np.int64], result: Run) -> Run:
    """The run of the model over the pools ``keep``, read back on ``model``'s columns."""
    counts = np.zeros(problem.n, dtype=np.int64)
    counts[keep] = np.rint(result.values[: len(keep)]).astype(np.int64)
    columns = plan_columns(problem, model, counts)
    return Run(columns, float(model.c @ columns), result.mip_gap)


#: A plan's counts over every pool, and the MIP gap of the solve that found it.
_Plan = tuple[NDArray[np.int64], float]


def _likely_plan(
    problem: Problem, values: NDArray[np.float64], reduced: NDArray[np.float64], likely: int
) -> tuple[_Plan | None, NDArray[np.int64]]:
    """The optimum over the pools the LP relaxation uses, the running fleet's and the ``likely``
    pools of least reduced cost (a small MILP, so fast): a feasible plan close to the optimum,
    or None when those pools hold none; and the pools searched.

    HiGHS starts it from the cheaper valid one of the running fleet and the LP optimum rounded
    up (which keeps every >= row); without a start, finding a first plan can dominate: one
    62-pool replan with a running fleet took 0.94 s CPU cold and 0.08 s from a start.
    """
    order = np.argsort(reduced, kind="stable")[:likely]
    running = running_counts(problem)
    keep = np.union1d(np.flatnonzero((values > 1e-9) | (running > 0)), order)
    bounds = cost_upper_bounds(problem)
    starts = [running, np.ceil(values - 1e-9).astype(np.int64)]
    valid = [
        counts
        for counts in starts
        if np.all(counts <= bounds) and np.any(counts > 0) and not violated(problem, counts)
    ]
    start = min(valid, key=lambda counts: objective_usd_per_hour(problem, counts), default=None)
    return _plan_over(problem, keep, start), keep


def _plan_over(
    problem: Problem, keep: NDArray[np.int64], start: NDArray[np.int64] | None = None
) -> _Plan | None:
    narrow = subset(problem, keep)
    narrow_model = build_model(narrow)
    # Without presolve: on these small models (about 50 pools) it costs more than it saves
    # (20 region-hedged replans at 2,000 tok/s on the sample market: 2.5 s to 1.9-2.1 s of
    # CPU, the same optima).
    result = run(
        narrow_model,
        backend="highspy",
        start=None if start is None else plan_columns(narrow, narrow_model, start[keep]),
        presolve=False,
    )
    if result is None:
        return None
    counts = np.zeros(problem.n, dtype=np.int64)
    counts[keep] = np.rint(result.values[: len(keep)]).astype(np.int64)
    return counts, result.mip_gap


def _restricted_plan(problem: Problem) -> _Plan | None:
    """A feasible plan from the cheapest pool per tok/s of each hedge group (spot) and each
    quota row (the rest), or None when that narrow MILP has none."""
    per_tps = problem.cost_usd_per_hour / problem.goodput_tokens_per_second
    quota = problem.quota_row if problem.quota_row is not None else np.full(problem.n, -1)
    # One key per group: hedge groups 0.., quota rows -1.. (pools in neither share key -1).
    key = np.where(problem.hedge_group >= 0, problem.hedge_group, -1 - np.maximum(quota, 0))
    order = np.lexsort((per_tps, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    return _plan_over(problem, np.sort(order[first]))


def subset(problem: Problem, keep: NDArray[np.int64]) -> Problem:
    """``problem`` over the pools ``keep`` only (the groups and quota rows stay as they are)."""

    def pick(array: NDArray[Any] | None) -> NDArray[Any] | None:
        return None if array is None else array[keep]

    return dataclasses.replace(
        problem,
        cost_usd_per_hour=problem.cost_usd_per_hour[keep],
        goodput_tokens_per_second=problem.goodput_tokens_per_second[keep],
        upper=problem.upper[keep],
        hedge_group=problem.hedge_group[keep],
        quota_row=pick(problem.quota_row),
        vcpus_each=pick(problem.vcpus_each),
        running=pick(problem.running),
        switch_cost_usd_per_hour=pick(problem.switch_cost_usd_per_hour),
        risk=pick(problem.risk),
        mix=None if problem.mix is None else problem.mix.subset(keep),
    )
