"""The after-solve check: does a plan meet every row, bound and integrality of its problem."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.mix import mix_violations
from scheduler.solver.problem import (
    FEASIBILITY_TOL,
    Problem,
    SolverError,
    group_sums,
    quota_use,
    switching_usd_per_hour,
)


def check_solution(problem: Problem, counts: NDArray[np.int64]) -> None:
    """Raise :class:`SolverError` unless ``counts`` meets every constraint of ``problem``."""
    violations = violated(problem, counts)
    if violations:
        raise SolverError(f"the solver's answer breaks {', '.join(violations)}")


def violated(problem: Problem, counts: NDArray[np.int64]) -> list[str]:
    """The names of the constraints ``counts`` breaks (empty when it is a valid plan)."""
    x = np.asarray(counts, dtype=np.float64)
    g = problem.goodput_tokens_per_second
    bad: list[str] = []
    if x.shape != (problem.n,) or np.any(x != np.rint(x)):
        return ["integrality"]
    if np.any(x < 0) or np.any(x > problem.upper + FEASIBILITY_TOL):
        bad.append("bounds")
    total = float(g @ x)
    if total < problem.required_tokens_per_second - FEASIBILITY_TOL:
        bad.append("throughput")
    if problem.hedge:
        lost = group_sums(problem, g * x)
        for name, value in zip(problem.hedge_group_names, lost, strict=True):
            if total - value < problem.slo_tokens_per_second - FEASIBILITY_TOL:
                bad.append(f"hedge:{name}")
        if problem.hedge_losses >= 2 and len(lost) >= 2:
            # The worst pair is the two largest group losses.
            two = float(np.sum(np.sort(lost)[-2:]))
            if total - two < problem.slo_tokens_per_second - FEASIBILITY_TOL:
                bad.append("hedge:two groups")
    if problem.quota_row is not None and problem.vcpus_each is not None:
        assert problem.quota_limit_vcpus is not None
        used = quota_use(problem, x)
        for k in np.flatnonzero(used > problem.quota_limit_vcpus + FEASIBILITY_TOL):
            bad.append(f"quota:{problem.quota_names[k]}")
    if problem.max_pool_share < 1 and np.any(
        g * x > problem.max_pool_share * total + FEASIBILITY_TOL
    ):
        bad.append("pool_share")
    budget = problem.budget_usd_per_hour
    if budget is not None and float(problem.cost_usd_per_hour @ x) > budget + FEASIBILITY_TOL:
        bad.append("budget")
    if problem.mix is not None:
        bad += mix_violations(problem, np.asarray(counts, dtype=np.int64))
    return bad


def objective_usd_per_hour(problem: Problem, counts: NDArray[np.int64]) -> float:
    """The true objective (expected cost plus switching), without the tie-break."""
    x = np.asarray(counts, dtype=np.float64)
    return float(problem.cost_usd_per_hour @ x) + switching_usd_per_hour(problem, x)
