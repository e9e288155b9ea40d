""":func:`solve`: the optimum of a problem, or which constraint family makes it infeasible."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.backends import Run, highspy_module, run
from scheduler.solver.check import check_solution, objective_usd_per_hour
from scheduler.solver.diagnosis import describe, diagnose, infeasible
from scheduler.solver.dominance import undominated
from scheduler.solver.mix_diagnosis import describe_mix, diagnose_mix, solve_lazily
from scheduler.solver.model import build_model
from scheduler.solver.narrowing import (
    LIKELY_POOLS,
    REDUCE_FROM_POOLS,
    solve_limited,
    solve_reduced,
    subset,
)
from scheduler.solver.problem import Backend, Problem, Solution, validate


def solve(
    problem: Problem,
    *,
    time_limit_s: float | None = None,
    backend: Backend = "auto",
    reduce_from_pools: int = REDUCE_FROM_POOLS,
    likely_pools: int = LIKELY_POOLS,
) -> Solution:
    """Solve ``problem`` to optimality; on infeasibility, say which family stops it.

    ``backend``: "highspy" (HiGHS's own Python binding), "scipy" (:func:`scipy.optimize.milp`,
    the HiGHS copy bundled in scipy) or "auto" (highspy when installed, else scipy).
    ``reduce_from_pools`` and ``likely_pools``: from how many pools on the model is narrowed
    first, and how wide its first plan looks (see
    :func:`scheduler.solver.narrowing.solve_reduced`).

    Pure and thread-safe: nothing is kept between calls.
    """
    validate(problem)
    if problem.mix is not None and problem.mix.scenario_losses is None:
        keep = undominated(problem)
        if len(keep) < problem.n:
            return _solve_undominated(
                problem,
                keep,
                lambda narrow: solve(
                    narrow,
                    time_limit_s=time_limit_s,
                    backend=backend,
                    reduce_from_pools=reduce_from_pools,
                    likely_pools=likely_pools,
                ),
            )
    if problem.mix is not None and problem.hedge and problem.mix.scenario_losses is None:
        return solve_lazily(
            problem,
            lambda trial: solve(
                trial,
                time_limit_s=time_limit_s,
                backend=backend,
                reduce_from_pools=reduce_from_pools,
                likely_pools=likely_pools,
            ),
        )
    started = time.perf_counter()
    model = build_model(problem)
    result: Run | None
    if highspy_module() is not None and backend != "scipy" and problem.n >= reduce_from_pools:
        result = solve_reduced(problem, model, time_limit_s=time_limit_s, likely_pools=likely_pools)
    else:
        result = run(model, time_limit_s=time_limit_s, backend=backend)
    if result is None:
        infeasibility = diagnose(problem) if problem.mix is None else diagnose_mix(problem)
        return infeasible(problem, infeasibility, time.perf_counter() - started)
    solution = _checked(problem, result, started)
    return solution if problem.mix is None else describe_mix(problem, solution)


def solve_below(
    problem: Problem,
    limit_usd_per_hour: float,
    *,
    time_limit_s: float | None = None,
    reduce_from_pools: int = REDUCE_FROM_POOLS,
) -> Solution | None:
    """The optimum of ``problem`` (as :func:`solve` finds it) when its objective (expected cost,
    switching and tie-break) is at most ``limit_usd_per_hour``; None when no plan is, or none
    exists. For a caller that can use a plan only below a figure (the planner's deeper hedge,
    which can win only by costing less than a shallower one): the search stops at the limit and
    nothing is diagnosed (:func:`scheduler.solver.narrowing.solve_limited`, which narrows the
    model from ``reduce_from_pools`` pools on).
    """
    validate(problem)
    if problem.mix is not None:
        solution = solve(problem, time_limit_s=time_limit_s)
        if solution.status != "optimal":
            return None
        within = objective_usd_per_hour(problem, solution.counts) <= limit_usd_per_hour
        return solution if within else None
    started = time.perf_counter()
    result = solve_limited(
        problem,
        limit_usd_per_hour,
        time_limit_s=time_limit_s,
        reduce_from_pools=reduce_from_pools,
    )
    return None if result is None else _checked(problem, result, started)


def _checked(problem: Problem, result: Run, started: float) -> Solution:
    """The plan of ``result``, checked against every constraint and described; ``started``:
    when the solve began (``time.perf_counter``)."""
    counts = np.rint(result.values[: problem.n]).astype(np.int64)
    check_solution(problem, counts)
    solve_s = time.perf_counter() - started
    return dataclasses.replace(describe(problem, counts, solve_s), mip_gap=result.mip_gap)


def _solve_undominated(
    problem: Problem, keep: NDArray[np.int64], solve_one: Callable[[Problem], Solution]
) -> Solution:
    """The optimum of ``problem`` found over the pools ``keep`` (every pool that no other
    dominates, :mod:`scheduler.solver.dominance`), read back on all pools; when none exists,
    why, on all pools (the dropped ones count for what is obtainable)."""
    started = time.perf_counter()
    narrow = solve_one(subset(problem, keep))
    if narrow.status != "optimal":
        return infeasible(problem, diagnose_mix(problem), time.perf_counter() - started)
    counts = np.zeros(problem.n, dtype=np.int64)
    counts[keep] = narrow.counts
    check_solution(problem, counts)
    solution = dataclasses.replace(
        describe(problem, counts, time.perf_counter() - started), mip_gap=narrow.mip_gap
    )
    return describe_mix(problem, solution)
