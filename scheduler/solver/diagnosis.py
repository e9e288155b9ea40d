"""Reading a solution: which rows bind, what the worst loss leaves, and, when no plan exists,
which constraint family stops it (see :class:`scheduler.solver.problem.Infeasibility`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.backends import run_model
from scheduler.solver.model import Csr, Model, build_model
from scheduler.solver.problem import (
    FEASIBILITY_TOL,
    Infeasibility,
    Problem,
    Solution,
    group_sums,
    quota_use,
    switching_usd_per_hour,
)


def diagnose(problem: Problem) -> Infeasibility:
    """Add constraint families one at a time; return the first after which no plan exists."""
    required = problem.required_tokens_per_second
    g = problem.goodput_tokens_per_second
    capacity = float(g @ problem.upper) if np.all(np.isfinite(problem.upper)) else np.inf
    if capacity < required - FEASIBILITY_TOL:
        return Infeasibility("capacity", capacity, required)
    base = _relaxed(problem, hedge=False, share=False, budget=False, floor=False)
    counts = _max_throughput_counts(base)
    most = 0.0 if counts is None else float(g @ counts)
    if most < required - FEASIBILITY_TOL:
        binding = tight_quotas(problem, counts) if counts is not None else ()
        return Infeasibility("quota", most, required, binding)
    if problem.hedge and problem.hedge_group_names:
        after, groups, best = _max_after_loss(base)
        if after < problem.slo_tokens_per_second - FEASIBILITY_TOL:
            tight = tight_quotas(problem, best) if best is not None else ()
            return Infeasibility("hedge", after, problem.slo_tokens_per_second, groups, tight)
    if problem.max_pool_share < 1:
        shared = _relaxed(problem, hedge=problem.hedge, share=False, budget=False)
        if run_model(build_model(shared)) is not None:
            share_most = _max_throughput(
                _relaxed(problem, hedge=False, share=True, budget=False, floor=False)
            )
            return Infeasibility("pool_share", share_most, required)
    if problem.budget_usd_per_hour is not None:
        unbudgeted = _relaxed(problem, hedge=problem.hedge, share=True, budget=False)
        result = run_model(build_model(unbudgeted))
        if result is not None:
            counts = np.rint(result[: problem.n]).astype(np.int64)
            cheapest = float(problem.cost_usd_per_hour @ counts)
            return Infeasibility("budget", cheapest, problem.budget_usd_per_hour)
    # Every family alone is satisfiable but not all together: name the last one tried.
    return Infeasibility("hedge" if problem.hedge else "quota", 0.0, required)


def describe(problem: Problem, counts: NDArray[np.int64], solve_s: float) -> Solution:
    x = counts.astype(np.float64)
    g = problem.goodput_tokens_per_second
    total = float(g @ x)
    after, worst = _after_worst_loss(problem, x)
    return Solution(
        status="optimal",
        counts=counts,
        cost_usd_per_hour=float(problem.cost_usd_per_hour @ x),
        switching_usd_per_hour=switching_usd_per_hour(problem, x),
        tokens_per_second=total,
        tokens_per_second_after_worst_loss=after,
        worst_loss_group=worst,
        binding=_binding(problem, x, total),
        solve_s=solve_s,
        at_cap=(x >= problem.upper - FEASIBILITY_TOL) & (x > 0),
    )


def infeasible(problem: Problem, infeasibility: Infeasibility, solve_s: float) -> Solution:
    return Solution(
        status="infeasible",
        counts=np.zeros(problem.n, dtype=np.int64),
        cost_usd_per_hour=0.0,
        switching_usd_per_hour=0.0,
        tokens_per_second=0.0,
        tokens_per_second_after_worst_loss=0.0,
        worst_loss_group=None,
        binding=(),
        solve_s=solve_s,
        infeasibility=infeasibility,
        at_cap=np.zeros(problem.n, dtype=bool),
    )


def _after_worst_loss(problem: Problem, x: NDArray[np.float64]) -> tuple[float, str | None]:
    total = float(problem.goodput_tokens_per_second @ x)
    if not problem.hedge_group_names:
        return total, None
    lost = group_sums(problem, problem.goodput_tokens_per_second * x)
    worst = int(np.argmax(lost))
    if lost[worst] <= 0:
        return total, None
    return total - float(lost[worst]), problem.hedge_group_names[worst]


def _binding(problem: Problem, x: NDArray[np.float64], total: float) -> tuple[str, ...]:
    """Rows that hold within one instance of their limit: with integer counts a row rarely
    holds with equality, but it binds when the plan could not give up a chosen instance (or
    take one more, for upper limits) without breaking it."""
    g = problem.goodput_tokens_per_second
    chosen = x > 0
    step = float(g[chosen].max()) if chosen.any() else 0.0
    names: list[str] = []
    if total - problem.required_tokens_per_second < step:
        names.append("throughput")
    if problem.hedge:
        lost = group_sums(problem, g * x)
        for name, value in zip(problem.hedge_group_names, lost, strict=True):
            if value > 0 and total - value - problem.slo_tokens_per_second < step:
                names.append(f"hedge:{name}")
    if problem.quota_row is not None:
        names += [f"quota:{name}" for name in tight_quotas(problem, x.astype(np.int64))]
    if problem.max_pool_share < 1:
        shares = g * x
        if np.any(chosen & (shares + g > problem.max_pool_share * (total + g))):
            names.append("pool_share")
    budget = problem.budget_usd_per_hour
    if budget is not None and chosen.any():
        cost = float(problem.cost_usd_per_hour @ x)
        if cost + float(problem.cost_usd_per_hour[chosen].min()) > budget:
            names.append("budget")
    return tuple(names)


def tight_quotas(problem: Problem, counts: NDArray[np.int64]) -> tuple[str, ...]:
    if problem.quota_row is None or problem.vcpus_each is None:
        return ()
    assert problem.quota_limit_vcpus is not None
    used = quota_use(problem, counts.astype(np.float64))
    # A row binds when not even the smallest member instance would still fit.
    names = []
    for k, limit in enumerate(problem.quota_limit_vcpus):
        members = np.flatnonzero(problem.quota_row == k)
        if len(members) and used[k] + problem.vcpus_each[members].min() > limit + FEASIBILITY_TOL:
            names.append(problem.quota_names[k])
    return tuple(names)


def _relaxed(
    problem: Problem, *, hedge: bool, share: bool, budget: bool, floor: bool = True
) -> Problem:
    """``problem`` without some families (and, with ``floor=False``, the throughput floor)."""
    return Problem(
        cost_usd_per_hour=problem.cost_usd_per_hour,
        goodput_tokens_per_second=problem.goodput_tokens_per_second,
        upper=problem.upper,
        hedge_group=problem.hedge_group,
        hedge_group_names=problem.hedge_group_names,
        slo_tokens_per_second=problem.slo_tokens_per_second,
        required_tokens_per_second=problem.required_tokens_per_second if floor else 0.0,
        hedge=hedge and problem.hedge,
        quota_row=problem.quota_row,
        vcpus_each=problem.vcpus_each,
        quota_limit_vcpus=problem.quota_limit_vcpus,
        quota_names=problem.quota_names,
        max_pool_share=problem.max_pool_share if share else 1.0,
        budget_usd_per_hour=problem.budget_usd_per_hour if budget else None,
    )


def _max_throughput_counts(problem: Problem) -> NDArray[np.int64] | None:
    model = build_model(problem, cost_bounds=False)
    # Cap T so that the maximisation stays bounded when some pool has no upper bound.
    c = np.zeros_like(model.c)
    c[problem.n] = -1.0
    bounded = Model(
        c,
        model.integrality,
        model.lower,
        np.where(np.isfinite(model.upper), model.upper, 1e12),
        model.a,
        model.row_lower,
        model.row_upper,
    )
    result = run_model(bounded)
    if result is None:
        return None
    return np.rint(result[: problem.n]).astype(np.int64)


def _max_throughput(problem: Problem) -> float:
    counts = _max_throughput_counts(problem)
    if counts is None:
        return 0.0
    return float(problem.goodput_tokens_per_second @ counts)


def _max_after_loss(
    problem: Problem,
) -> tuple[float, tuple[str, ...], NDArray[np.int64] | None]:
    """The most throughput a plan can keep after its worst group loss, the groups that cap it
    (where losing the group leaves exactly that much), and that plan's counts.

    Adds a column ``w`` with ``T - spot_a - w >= 0`` for every group and maximises ``w``.
    """
    n = problem.n
    model = build_model(problem, cost_bounds=False)
    groups = len(problem.hedge_group_names)
    g = problem.goodput_tokens_per_second
    cols = model.a.shape[1]
    w = cols
    extra_rows = []
    for a in range(groups):
        row = np.zeros(cols + 1)
        members = np.flatnonzero(problem.hedge_group == a)
        row[members] = -g[members]
        row[n] = 1.0
        row[w] = -1.0
        extra_rows.append(row)
    import scipy.sparse as sp  # here: only the diagnosis of an infeasible plan needs it

    base = model.a.tocsr()
    a_matrix = Csr.from_scipy(
        sp.vstack([sp.hstack([base, sp.csr_array((base.shape[0], 1))]), sp.csr_array(extra_rows)])
    )
    c = np.zeros(cols + 1)
    c[w] = -1.0
    finite_upper = np.where(np.isfinite(model.upper), model.upper, 1e12)
    extended = Model(
        c,
        np.append(model.integrality, 0),
        np.append(model.lower, 0.0),
        np.append(finite_upper, np.inf),
        a_matrix,
        np.append(model.row_lower, np.zeros(groups)),
        np.append(model.row_upper, np.full(groups, np.inf)),
    )
    result = run_model(extended)
    if result is None:
        return 0.0, (), None
    x = np.rint(result[:n])
    total = float(g @ x)
    lost = group_sums(problem, g * x)
    after = total - float(lost.max()) if groups else total
    capping = tuple(
        name
        for name, value in zip(problem.hedge_group_names, lost, strict=True)
        if value > 0 and total - value <= after + FEASIBILITY_TOL
    )
    if not capping:
        # The best plan holds no spot at all: name the groups whose spot could have helped.
        upper = np.where(np.isfinite(problem.upper), problem.upper, 1.0)
        obtainable = group_sums(problem, g * upper)
        capping = tuple(
            name
            for name, value in zip(problem.hedge_group_names, obtainable, strict=True)
            if value > 0
        )
    return after, capping, x.astype(np.int64)
