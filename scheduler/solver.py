r"""The planning MILP: pure numbers in, integer instance counts out (no database, no I/O).

Notation
--------
Pools p = 1..n, each a (region, zone, instance type, market). For pool p:

- ``x_p`` integer, the instance count (the decision);
- ``c_p`` the expected hourly cost of one instance in USD: the price estimate plus the expected
  cost of interruptions (hazard x replacement time x replacement price), computed by the planner;
- ``g_p`` goodput in output tok/s of one instance (the harness's figure for the type);
- ``u_p`` the obtainable count (placement-score cap for spot; quota-derived for on-demand);
- ``r_p`` instances already running, ``s_p`` the switching cost per new instance in USD per
  hour (start-up time x price / horizon);
- ``q_p`` the vCPUs of one instance, ``k(p)`` its quota row (region x market x family class);
- ``z_p`` a tiny tie-break weight, ``eps * c_p * risk_p`` with ``risk_p`` in [0, 1];
- ``a(p)`` the hedge group (AZ or region) of a spot pool; on-demand pools belong to none.

Auxiliary variables: ``T``, the total throughput, and ``y_p >= 0`` the new instances of a pool
that already runs some (``y_p >= x_p - r_p``). A pool with ``r_p = 0`` pays ``s_p`` on all of
``x_p``, so it needs no ``y_p``.

Objective
---------
    minimise   sum_p (c_p + z_p) x_p  +  sum_{p: r_p = 0} s_p x_p  +  sum_{p: r_p > 0} s_p y_p

Constraints
-----------
    (total)      T - sum_p g_p x_p = 0
    (throughput) T >= R                                   R = SLO x (1 + headroom)
    (hedge)      T - sum_{p: a(p) = a} g_p x_p >= S       for every hedge group a, S = SLO
    (quota)      sum_{p: k(p) = k} q_p x_p <= Q_k         for every quota row k
    (share)      g_p x_p - m T <= 0                       for every pool, when m < 1
    (budget)     sum_p c_p x_p <= B                       when a budget is set
    (switch)     y_p - x_p >= -r_p                        for every pool with r_p > 0
    (bounds)     0 <= x_p <= u_p,  x_p integer

Strengthening (exact, the same integer plans and optimum; see :func:`_capped` and
:func:`_cost_bounds`): when some pool's goodput exceeds the SLO S, the hedge rows are written
on ``H = sum_p min(g_p, S) x_p`` instead of T (one more column and row), and when one exceeds R
a row ``sum_p min(g_p, R) x_p >= R`` joins the throughput bound; for the cost objective each
pool's bound becomes ``min(u_p, ceil(max(R, S) / g_p))``. The LP relaxation otherwise meets the
SLO with fractions of an instance far larger than it, and sits 12-25% below the optimum.

The hedge loss-level cuts (exact too; see :func:`_loss_levels`): for each distinct hedge goodput
``gamma`` of a hedged pool, with ``B_gamma = sum_{p hedged, h_p >= gamma} h_p x_p``,

    (cut)        (S + gamma) / S * H - gamma / S * B_gamma >= S + gamma

(an integer plan that runs any such pool loses at least gamma with its group, so it carries
S + gamma; one that runs none has ``B_gamma = 0`` and ``H >= S``). The B columns are chained, one
per level, so each pool appears in one of their rows. Without them the relaxation spreads
fractions of an instance over many groups so that no group loses a whole one: on the 869-pool
sample universe it sits 35%, 21% and 5% below the optimum at 500, 2,000 and 5,000 tok/s; with
them 0%, 6% and 2% (1-6% up to 50,000 tok/s), and the plan at 5,000 tok/s solves 8x faster.

The sparse hedge formulation: each hedge row holds ``T`` (or ``H``) and only the spot pools of
its own group, so all hedge rows together hold n + (number of groups) non-zeros, instead of one
dense row per group over every other pool (n x groups). The share rows have two non-zeros each.

Solved with HiGHS, through highspy (HiGHS's own binding, a newer release than the copy inside
scipy) when it is installed, else through :func:`scipy.optimize.milp`; with a relative gap of
1e-9 so the answer is the optimum, not merely near it. The returned counts are then checked
against every row, bound and integrality before they are trusted (:func:`check_solution`).

When the problem is infeasible, :func:`solve` finds which family of constraints stops it by
adding them one at a time (caps, quotas, hedge, pool share, budget) and measuring the most the
earlier families allow; see :class:`Infeasibility`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp

#: Weight of the risk tie-break relative to a pool's cost: small enough never to trade real
#: money (a plan costs at most this fraction more than the optimum), large enough for HiGHS to
#: see it with the gap below.
TIE_BREAK = 1e-6
MIP_REL_GAP = 1e-9
MIP_ABS_GAP = 1e-9
#: From this many pools on, :func:`solve` first narrows the model exactly (see
#: :func:`_solve_reduced`); on the 869-pool sample universe it halves the solver's CPU time.
REDUCE_FROM_POOLS = 200
#: Pools of least reduced cost the first plan of :func:`_solve_reduced` may use (besides those
#: the LP relaxation uses).
LIKELY_POOLS = 48
#: The relative MIP gap HiGHS reported for the last solve (per thread would be overkill: the
#: figure is informational, read right after :func:`solve` by the benchmark).
_LAST_GAP = [0.0]
_LAST_RELAXATION: list[tuple[float, NDArray[np.float64], NDArray[np.float64]]] = [
    (0.0, np.zeros(0), np.zeros(0))
]
#: Tolerance of the after-solve check, in the rows' own units (tok/s, vCPUs, USD/h).
FEASIBILITY_TOL = 1e-6

Family = Literal["capacity", "quota", "hedge", "pool_share", "budget"]
Backend = Literal["auto", "highspy", "scipy"]


@dataclass(frozen=True)
class Problem:
    """One planning MILP. Arrays are per pool, all of length n."""

    cost_usd_per_hour: NDArray[np.float64]
    goodput_tokens_per_second: NDArray[np.float64]
    #: Largest obtainable count per pool; ``np.inf`` for none.
    upper: NDArray[np.float64]
    #: Hedge group index per pool (``-1``: not hedged, e.g. on-demand).
    hedge_group: NDArray[np.int64]
    hedge_group_names: tuple[str, ...]
    #: SLO the hedge rows must keep (tok/s).
    slo_tokens_per_second: float
    #: Throughput the plan must reach (SLO plus headroom).
    required_tokens_per_second: float
    hedge: bool = True
    #: Quota row index per pool (``-1``: none), the vCPUs of one instance, and the row limits.
    quota_row: NDArray[np.int64] | None = None
    vcpus_each: NDArray[np.float64] | None = None
    quota_limit_vcpus: NDArray[np.float64] | None = None
    quota_names: tuple[str, ...] = ()
    max_pool_share: float = 1.0
    budget_usd_per_hour: float | None = None
    running: NDArray[np.int64] | None = None
    switch_cost_usd_per_hour: NDArray[np.float64] | None = None
    #: Interruption risk in [0, 1] per pool, used only to break ties.
    risk: NDArray[np.float64] | None = None

    @property
    def n(self) -> int:
        return len(self.cost_usd_per_hour)


@dataclass(frozen=True)
class Infeasibility:
    """Why no plan exists: the first constraint family that makes the problem infeasible.

    ``achievable`` is the most the earlier families allow, in the family's unit: tok/s for
    capacity, quota and pool_share; tok/s left after the worst loss for hedge; USD/h (the
    cheapest plan) for budget. ``binding`` names the rows that stop it (quota rows, hedge groups).
    """

    family: Family
    achievable: float
    required: float
    binding: tuple[str, ...] = ()
    #: Quota rows full in the best plan the earlier families allow (they limit it too).
    tight_quotas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Solution:
    status: Literal["optimal", "infeasible"]
    counts: NDArray[np.int64]
    #: sum_p c_p x_p: the expected hourly cost of the plan (without switching).
    cost_usd_per_hour: float
    #: Amortised start-up cost of the new instances, USD per hour.
    switching_usd_per_hour: float
    tokens_per_second: float
    #: Throughput left after losing every spot instance of the worst hedge group.
    tokens_per_second_after_worst_loss: float
    worst_loss_group: str | None
    #: Names of the constraints that hold with equality at the optimum.
    binding: tuple[str, ...]
    solve_s: float
    infeasibility: Infeasibility | None = None
    #: The relative gap between the plan and HiGHS's proven lower bound (0: proven optimal).
    mip_gap: float = 0.0
    #: Per-pool flag: the count sits at its upper bound.
    at_cap: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))


class SolverError(RuntimeError):
    """HiGHS returned something that fails the after-solve check (a bug, never user input)."""


def solve(
    problem: Problem, *, time_limit_s: float | None = None, backend: Backend = "auto"
) -> Solution:
    """Solve ``problem`` to optimality; on infeasibility, say which family stops it.

    ``backend``: "highspy" (HiGHS's own Python binding), "scipy" (:func:`scipy.optimize.milp`,
    the HiGHS copy bundled in scipy) or "auto" (highspy when installed, else scipy).
    """
    _validate(problem)
    started = time.perf_counter()
    model = build_model(problem)
    result: NDArray[np.float64] | None
    if _highspy() is not None and backend != "scipy" and problem.n >= REDUCE_FROM_POOLS:
        result = _solve_reduced(problem, model, time_limit_s=time_limit_s)
    else:
        result = run_model(model, time_limit_s=time_limit_s, backend=backend)
    if result is None:
        infeasibility = diagnose(problem)
        return _infeasible(problem, infeasibility, time.perf_counter() - started)
    gap = _LAST_GAP[0]
    counts = np.rint(result[: problem.n]).astype(np.int64)
    check_solution(problem, counts)
    solve_s = time.perf_counter() - started
    return dataclasses.replace(_describe(problem, counts, solve_s), mip_gap=gap)


def cost_lower_bound(problem: Problem, *, enough: float | None = None) -> float | None:
    """A lower bound on ``sum_p c_p x_p`` over every plan of ``problem``: the optimum of the LP
    relaxation of the strengthened model with the switching costs and the tie-break left out
    (both only add to the objective); ``None`` when even the relaxation is infeasible.

    ``enough``: a caller that only needs to know whether the bound reaches this figure gets the
    cheaper bound of :func:`_rate_bound` when it does, without the LP.

    No branching: a caller that acts only when a plan saves enough against what runs (the
    rebalancer's thresholds) can rule a move out without solving the MILP. On the 869-pool
    sample universe the LP bound lies 0-6% below the optimum (500 to 50,000 tok/s).
    """
    _validate(problem)
    costs_only = dataclasses.replace(
        problem, running=None, switch_cost_usd_per_hour=None, risk=None
    )
    if enough is not None:
        quick = _rate_bound(costs_only)
        if quick >= enough:
            return quick
    model = build_model(costs_only)
    relaxed = dataclasses.replace(model, integrality=np.zeros_like(model.integrality))
    result = run_model(relaxed)
    if result is None:
        return None
    return float(model.c @ result)


def _rate_bound(problem: Problem) -> float:
    """A bound on ``sum_p c_p x_p`` from the cheapest cost per tok/s alone (caps, quotas and
    side rows aside), in O(n).

    Every plan has ``sum_p min(g_p, R) x_p >= R`` (see :func:`_capped`), so it costs at least
    ``R min_p c_p / min(g_p, R)``. With the hedge, a plan that runs a hedged pool has
    ``H >= S + gamma_min`` (the smallest hedge goodput of a hedged pool that may run; see
    :func:`_loss_levels`), so it costs at least ``(S + gamma_min) min_p c_p / min(g_p, S)``,
    and one that runs none pays the unhedged pools' rates for R and S.
    """
    c, g = problem.cost_usd_per_hour, problem.goodput_tokens_per_second
    required, slo = problem.required_tokens_per_second, problem.slo_tokens_per_second
    usable = problem.upper >= 1
    if required <= 0 or not usable.any():
        return 0.0

    def least(need: float, mask: NDArray[np.bool_]) -> float:
        if need <= 0:
            return 0.0
        if not mask.any():
            return np.inf
        return need * float(np.min(c[mask] / np.minimum(g[mask], need)))

    bound = least(required, usable)
    hedged = usable & (problem.hedge_group >= 0)
    if problem.hedge and slo > 0 and problem.hedge_group_names and hedged.any():
        gamma_min = float(np.min(np.minimum(g[hedged], slo)))
        with_hedged = least(slo, usable) * (slo + gamma_min) / slo
        without = max(least(required, usable & ~hedged), least(slo, usable & ~hedged))
        bound = max(bound, min(with_hedged, without))
    return bound


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
        lost = _group_sums(problem, g * x)
        for name, value in zip(problem.hedge_group_names, lost, strict=True):
            if total - value < problem.slo_tokens_per_second - FEASIBILITY_TOL:
                bad.append(f"hedge:{name}")
    if problem.quota_row is not None and problem.vcpus_each is not None:
        assert problem.quota_limit_vcpus is not None
        used = _quota_use(problem, x)
        for k in np.flatnonzero(used > problem.quota_limit_vcpus + FEASIBILITY_TOL):
            bad.append(f"quota:{problem.quota_names[k]}")
    if problem.max_pool_share < 1 and np.any(
        g * x > problem.max_pool_share * total + FEASIBILITY_TOL
    ):
        bad.append("pool_share")
    budget = problem.budget_usd_per_hour
    if budget is not None and float(problem.cost_usd_per_hour @ x) > budget + FEASIBILITY_TOL:
        bad.append("budget")
    return bad


def objective_usd_per_hour(problem: Problem, counts: NDArray[np.int64]) -> float:
    """The true objective (expected cost plus switching), without the tie-break."""
    x = np.asarray(counts, dtype=np.float64)
    return float(problem.cost_usd_per_hour @ x) + _switching(problem, x)


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
        binding = _tight_quotas(problem, counts) if counts is not None else ()
        return Infeasibility("quota", most, required, binding)
    if problem.hedge and problem.hedge_group_names:
        after, groups, best = _max_after_loss(base)
        if after < problem.slo_tokens_per_second - FEASIBILITY_TOL:
            tight = _tight_quotas(problem, best) if best is not None else ()
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


# --- building the model -------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """The MILP in matrix form: min c x  s.t.  row_lower <= A x <= row_upper, bounds, integrality
    (what :func:`build_model` makes; the benchmark hands the same arrays to other solvers)."""

    c: NDArray[np.float64]
    integrality: NDArray[np.int64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    a: sp.csr_array
    row_lower: NDArray[np.float64]
    row_upper: NDArray[np.float64]


def _validate(problem: Problem) -> None:
    n = problem.n
    arrays = {
        "goodput_tokens_per_second": problem.goodput_tokens_per_second,
        "upper": problem.upper,
        "hedge_group": problem.hedge_group,
    }
    for name, array in arrays.items():
        if np.shape(array) != (n,):
            raise ValueError(f"{name} has shape {np.shape(array)}, expected ({n},)")
    if np.any(problem.goodput_tokens_per_second <= 0):
        raise ValueError("every pool needs a positive goodput")
    if np.any(problem.cost_usd_per_hour < 0):
        raise ValueError("costs must be non-negative")


def build_model(problem: Problem, *, cost_bounds: bool = True) -> Model:
    """The sparse model: columns x_0..x_{n-1}, T, then y_p for pools that already run some, then
    H when some pool's goodput exceeds the SLO (see :func:`_capped`).

    ``cost_bounds``: tighten each pool's upper bound to what a cheapest plan can use (see
    :func:`_cost_bounds`); only valid for this objective, so models that optimise something
    else (the diagnosis) pass False.
    """
    n = problem.n
    g = problem.goodput_tokens_per_second
    running = _running(problem)
    switch = _switch_cost(problem)
    has_running = np.flatnonzero(running > 0)
    m = len(has_running)
    t_col = n
    hedge_g, throughput_g = _capped(problem)
    h_col = n + 1 + m if hedge_g is not None else t_col
    levels, level_of = _loss_levels(problem)
    b_col = n + 1 + m + (hedge_g is not None)
    n_cols = b_col + len(levels)

    risk = problem.risk if problem.risk is not None else np.zeros(n)
    c = np.zeros(n_cols)
    c[:n] = problem.cost_usd_per_hour * (1 + TIE_BREAK * np.clip(risk, 0, 1))
    no_running = running == 0
    c[:n][no_running] += switch[no_running]
    c[n + 1 : n + 1 + m] = switch[has_running]

    rows: list[NDArray[np.int64]] = []
    cols: list[NDArray[np.int64]] = []
    vals: list[NDArray[np.float64]] = []
    lo: list[float] = []
    hi: list[float] = []
    r = 0

    def add(
        row_cols: NDArray[np.int64], row_vals: NDArray[np.float64], low: float, high: float
    ) -> None:
        nonlocal r
        rows.append(np.full(len(row_cols), r, dtype=np.int64))
        cols.append(np.asarray(row_cols, dtype=np.int64))
        vals.append(np.asarray(row_vals, dtype=np.float64))
        lo.append(low)
        hi.append(high)
        r += 1

    pools = np.arange(n, dtype=np.int64)
    # (total) T - sum g x = 0, and (throughput) as T's lower bound below.
    add(np.append(pools, t_col), np.append(-g, 1.0), 0.0, 0.0)
    if throughput_g is not None:
        add(pools, throughput_g, problem.required_tokens_per_second, np.inf)
    if hedge_g is not None:
        # (hedge total) H - sum min(g, S) x = 0
        add(np.append(pools, h_col), np.append(-hedge_g, 1.0), 0.0, 0.0)
    if problem.hedge:
        row_g = g if hedge_g is None else hedge_g
        for a in range(len(problem.hedge_group_names)):
            members = np.flatnonzero(problem.hedge_group == a)
            add(
                np.append(members, h_col),
                np.append(-row_g[members], 1.0),
                problem.slo_tokens_per_second,
                np.inf,
            )
    if len(levels):
        # (loss levels) B_k - B_{k-1} - sum_{level(p) = k} h_p x_p = 0, then
        #   (S + gamma_k) / S * H - gamma_k / S * B_k >= S + gamma_k
        row_g = g if hedge_g is None else hedge_g
        slo = problem.slo_tokens_per_second
        for k, gamma in enumerate(levels):
            members = np.flatnonzero(level_of == k)
            chain = [b_col + k] + ([b_col + k - 1] if k else [])
            add(
                np.concatenate([chain, members]),
                np.concatenate([[1.0], [-1.0] if k else [], -row_g[members]]),
                0.0,
                0.0,
            )
            add(
                np.array([h_col, b_col + k]),
                np.array([(slo + gamma) / slo, -gamma / slo]),
                slo + gamma,
                np.inf,
            )
    if problem.quota_row is not None and problem.vcpus_each is not None:
        assert problem.quota_limit_vcpus is not None
        for k, limit in enumerate(problem.quota_limit_vcpus):
            members = np.flatnonzero(problem.quota_row == k)
            if len(members):
                add(members, problem.vcpus_each[members], -np.inf, float(limit))
    if problem.max_pool_share < 1:
        share = problem.max_pool_share
        for p in range(n):
            add(np.array([p, t_col]), np.array([g[p], -share]), -np.inf, 0.0)
    if problem.budget_usd_per_hour is not None:
        add(pools, problem.cost_usd_per_hour, -np.inf, problem.budget_usd_per_hour)
    for j, pool in enumerate(has_running):
        add(np.array([n + 1 + j, pool]), np.array([1.0, -1.0]), -float(running[pool]), np.inf)

    a = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, n_cols)
    )
    lower = np.zeros(n_cols)
    lower[t_col] = problem.required_tokens_per_second
    upper = np.full(n_cols, np.inf)
    upper[:n] = _cost_bounds(problem) if cost_bounds else problem.upper
    integrality = np.zeros(n_cols, dtype=np.int64)
    integrality[:n] = 1
    return Model(c, integrality, lower, upper, a, np.array(lo), np.array(hi))


def plan_columns(problem: Problem, model: Model, counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Every column of ``model`` for the plan ``counts``: x, T, y_p = max(x_p - r_p, 0), H."""
    n = problem.n
    x = counts.astype(np.float64)
    columns = np.zeros(len(model.c))
    columns[:n] = x
    columns[n] = float(problem.goodput_tokens_per_second @ x)
    running = _running(problem)
    has_running = np.flatnonzero(running > 0)
    columns[n + 1 : n + 1 + len(has_running)] = np.maximum(x[has_running] - running[has_running], 0)
    hedge_g, _ = _capped(problem)
    b_col = n + 1 + len(has_running)
    if hedge_g is not None:
        columns[b_col] = float(hedge_g @ x)
        b_col += 1
    levels, level_of = _loss_levels(problem)
    if len(levels):
        row_g = problem.goodput_tokens_per_second if hedge_g is None else hedge_g
        member = level_of >= 0
        per_level = np.bincount(
            level_of[member], weights=(row_g * x)[member], minlength=len(levels)
        )
        columns[b_col:] = np.cumsum(per_level)
    return columns


def _loss_levels(problem: Problem) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The loss levels gamma_1 > gamma_2 > ... of the hedge cuts, and each pool's level index
    (-1: not a hedged pool).

    The levels are the distinct hedge goodputs ``h_p`` (``min(g_p, S)``) of the hedged pools;
    ``B_k = sum_{p hedged, h_p >= gamma_k} h_p x_p``, one column per level chained so that each
    pool appears in one row only. The cut of level k,

        (S + gamma_k) / S * H - gamma_k / S * B_k >= S + gamma_k,

    holds for every integer plan. When some hedged pool p with ``h_p >= gamma_k`` runs, its
    group's hedge row gives ``H >= S + h_p x_p >= S + gamma_k``, and the left side is
    ``H + gamma_k / S * (H - B_k) >= H``. When none runs, ``B_k = 0`` and any hedge row gives
    ``H >= S``, so the left side is ``(S + gamma_k) / S * H >= S + gamma_k``. The LP relaxation
    otherwise meets the hedge by spreading fractions of an instance over many groups, losing less
    than one instance in any group: on the 869-pool sample universe at 5,000 tok/s it spread
    0.61 of a g5.xlarge over 9 zones, 1.91 $/h against the optimum's 2.01 (one in each of 6).
    """
    level_of = np.full(problem.n, -1, dtype=np.int64)
    slo = problem.slo_tokens_per_second
    hedged = problem.hedge_group >= 0
    if not problem.hedge or slo <= 0 or not problem.hedge_group_names or not hedged.any():
        return np.zeros(0), level_of
    h = np.minimum(problem.goodput_tokens_per_second, slo)
    levels = np.unique(h[hedged])[::-1]
    level_of[hedged] = np.searchsorted(-levels, -h[hedged])
    return levels, level_of


def _capped(
    problem: Problem,
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """Goodputs capped at the SLO for the hedge rows and at the requirement for a throughput
    row, or None where no pool exceeds the cap (the rows on T are then already as tight).

    With integer counts, ``sum_p g_p x_p >= S`` holds exactly when ``sum_p min(g_p, S) x_p >= S``
    does (one instance of a pool with ``g_p >= S`` meets either alone; without one, the two sums
    are equal), so capping changes no integer plan. It tightens the LP relaxation, which
    otherwise covers the SLO with fractions of an instance larger than the SLO: on the 869-pool
    sample universe at 5,000 tok/s its bound rises from 1.67 to 1.91 $/h (optimum 2.01), which
    lets :func:`_solve_reduced` drop many more pools.
    """
    g = problem.goodput_tokens_per_second
    slo = problem.slo_tokens_per_second
    required = problem.required_tokens_per_second
    hedge_g = np.minimum(g, slo) if problem.hedge and slo > 0 and np.any(g > slo) else None
    throughput_g = np.minimum(g, required) if required > 0 and np.any(g > required) else None
    return hedge_g, throughput_g


def _cost_bounds(problem: Problem) -> NDArray[np.float64]:
    """Upper bounds no cheapest plan exceeds: ``x_p <= ceil(max(R, S) / g_p)``.

    If ``(x_p - 1) g_p >= max(R, S)``, one instance fewer still meets the throughput row
    (``T - g_p >= R``), keeps every other group's hedge row (what survives losing group b holds
    all of pool p, ``>= x_p g_p``, so it keeps ``>= S``) and leaves the pool's own group's row as
    it was; quota and budget rows only gain, and no cost is negative. So some optimum lies within
    the bound. Not with a pool-share limit (one instance fewer shrinks T, which may push another
    pool over its share) nor with negative switching costs: the bounds are then left alone.
    """
    upper = problem.upper
    if problem.max_pool_share < 1 or np.any(_switch_cost(problem) < 0):
        return upper
    need = max(problem.required_tokens_per_second, problem.slo_tokens_per_second)
    if need <= 0:
        return upper
    g = problem.goodput_tokens_per_second
    # The 1e-9 keeps an exact multiple (need = k g_p) at k rather than k + 1.
    return np.minimum(upper, np.ceil(need / g - 1e-9))


def run_model(
    model: Model,
    *,
    time_limit_s: float | None = None,
    backend: Backend = "auto",
    start: NDArray[np.float64] | None = None,
) -> NDArray[np.float64] | None:
    """The optimal column values, or None when the model is infeasible; ``start`` (all columns,
    highspy only) is a feasible solution HiGHS starts from."""
    highspy = _highspy() if backend != "scipy" else None
    if backend == "highspy" and highspy is None:
        raise SolverError("highspy is not installed: pip install highspy, or use backend scipy")
    if highspy is None:
        return _run_scipy(model, time_limit_s=time_limit_s)
    return _run_highspy(highspy, model, time_limit_s=time_limit_s, start=start)


def _run_scipy(model: Model, *, time_limit_s: float | None = None) -> NDArray[np.float64] | None:
    options: dict[str, float | bool] = {"mip_rel_gap": MIP_REL_GAP, "disp": False}
    if time_limit_s is not None:
        options["time_limit"] = time_limit_s
    result = milp(
        model.c,
        integrality=model.integrality,
        bounds=Bounds(model.lower, model.upper),
        constraints=LinearConstraint(model.a, model.row_lower, model.row_upper),
        options=options,
    )
    if result.status == 2:  # infeasible
        return None
    if result.x is None:
        raise SolverError(f"HiGHS stopped without a solution: {result.message}")
    _LAST_GAP[0] = float(getattr(result, "mip_gap", 0.0) or 0.0)
    return np.asarray(result.x)


def _run_highspy(
    highspy: Any,
    model: Model,
    *,
    time_limit_s: float | None = None,
    start: NDArray[np.float64] | None = None,
    relax: bool = False,
) -> NDArray[np.float64] | None:
    """The same model through highspy, the HiGHS release newer than scipy's copy (which also
    prints debugging lines on stdout during some MIP solves)."""
    inf = highspy.kHighsInf
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    _one_thread(highs)
    highs.setOptionValue("mip_rel_gap", MIP_REL_GAP)
    highs.setOptionValue("mip_abs_gap", MIP_ABS_GAP)
    # The RINS and RENS sub-MIP heuristics cost more than they find on these models: CPU time
    # on the SkyPilot snapshot universe (839 pools, 50k tok/s) fell from 0.90 s to 0.75 s.
    highs.setOptionValue("mip_heuristic_run_rins", False)
    highs.setOptionValue("mip_heuristic_run_rens", False)
    if time_limit_s is not None:
        highs.setOptionValue("time_limit", float(time_limit_s))
    lp = highspy.HighsLp()
    lp.num_col_ = len(model.c)
    lp.num_row_ = model.a.shape[0]
    lp.col_cost_ = model.c
    lp.col_lower_ = model.lower
    lp.col_upper_ = np.where(np.isfinite(model.upper), model.upper, inf)
    lp.row_lower_ = np.where(np.isfinite(model.row_lower), model.row_lower, -inf)
    lp.row_upper_ = np.where(np.isfinite(model.row_upper), model.row_upper, inf)
    matrix = model.a.tocsr()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(np.float64)
    kinds = highspy.HighsVarType
    if not relax:
        lp.integrality_ = [kinds.kInteger if i else kinds.kContinuous for i in model.integrality]
    highs.passModel(lp)
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = list(start)
        solution.value_valid = True
        highs.setSolution(solution)
    highs.run()
    status = highs.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None
    if status != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"HiGHS stopped without an optimal solution: {status}")
    if relax:
        result = highs.getSolution()
        _LAST_RELAXATION[0] = (
            float(highs.getInfo().objective_function_value),
            np.asarray(result.col_value, dtype=np.float64),
            np.asarray(result.col_dual, dtype=np.float64),
        )
        return _LAST_RELAXATION[0][1]
    _LAST_GAP[0] = float(highs.getInfo().mip_gap)
    return np.asarray(highs.getSolution().col_value, dtype=np.float64)


def _one_thread(highs: Any) -> None:
    """These models are small: HiGHS's worker threads cost more CPU than they save (solver CPU
    on the 869-pool sample universe: 0.063 s with two threads, 0.041 s with one). HiGHS fixes
    its thread pool at the first run of a process, so every instance asks for the same."""
    highs.setOptionValue("threads", 1)


@functools.cache
def _highspy() -> Any:
    """highspy when installed (else None: scipy's milp is used)."""
    try:
        import highspy
    except ImportError:
        return None
    # The first Highs() of a process prints a banner on stdout, which would corrupt
    # `--format json`; build it once with stdout pointed at /dev/null.
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            _one_thread(highspy.Highs())
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return highspy


# --- exact narrowing of large models -------------------------------------------------------


def _solve_reduced(
    problem: Problem, model: Model, *, time_limit_s: float | None = None
) -> NDArray[np.float64] | None:
    """The optimum of ``model``, found on a narrower model that provably holds it.

    1. The LP relaxation of the full model: its optimum z and reduced costs d_p.
    2. A feasible plan (the upper bound U): the same MILP restricted to the pools the LP uses
       and the LIKELY_POOLS of least reduced cost (small, so fast); where those hold no plan,
       restricted to the cheapest pool per tok/s of each hedge group and of each on-demand
       quota row.
    3. Reduced-cost fixing: any plan with x_p >= 1 for a pool at 0 in the LP costs at least
       z + d_p (LP duality), so pools with d_p > U - z cannot be in a plan cheaper than U and
       are dropped. The full MILP is then solved over the pools left (cold: faster than from
       the plan), unless step 2 already searched all of them (its plan is then the optimum).

    Returns the full model's columns, or None when it is infeasible.
    """
    highspy = _highspy()
    n = problem.n
    if _run_highspy(highspy, model, relax=True) is None:
        return None
    bound, values, duals = _LAST_RELAXATION[0]
    start_counts, searched = _likely_plan(problem, values[:n], duals[:n])
    if start_counts is None:
        start_counts, searched = _restricted_plan(problem), np.zeros(0, dtype=np.int64)
    if start_counts is None:
        return run_model(model, time_limit_s=time_limit_s, backend="highspy")
    start = plan_columns(problem, model, start_counts)
    upper_bound = float(model.c @ start)
    margin = 1e-6 * max(1.0, abs(upper_bound))
    drop = (values[:n] <= 1e-9) & (duals[:n] > upper_bound - bound + margin)
    keep = np.flatnonzero(~drop)
    if np.all(np.isin(keep, searched)):
        # The first plan is the optimum over pools that include every pool left: it is the
        # optimum (the 869-pool universe at 5,000 tok/s: one MILP instead of two).
        return start
    narrow = _subset(problem, keep)
    narrow_model = build_model(narrow)
    # No start here: HiGHS proves this optimum faster without one (10,000-pool cut: 7.8 s CPU
    # with the first plan as start, 2.9 s without; the first MILP is the other way round).
    result = run_model(narrow_model, time_limit_s=time_limit_s, backend="highspy")
    if result is None:  # cannot happen (the start is feasible there); keep the start
        return start
    counts = np.zeros(n, dtype=np.int64)
    counts[keep] = np.rint(result[: len(keep)]).astype(np.int64)
    return plan_columns(problem, model, counts)


def _likely_plan(
    problem: Problem, values: NDArray[np.float64], reduced: NDArray[np.float64]
) -> tuple[NDArray[np.int64] | None, NDArray[np.int64]]:
    """The optimum over the pools the LP relaxation uses, the running fleet's and the
    LIKELY_POOLS of least reduced cost (a small MILP, so fast): a feasible plan close to the
    optimum, or None when those pools hold none; and the pools searched.

    HiGHS starts it from the cheaper valid one of the running fleet and the LP optimum rounded
    up (which keeps every >= row); without a start, finding a first plan can dominate: one
    62-pool replan with a running fleet took 0.94 s CPU cold and 0.08 s from a start.
    """
    order = np.argsort(reduced, kind="stable")[:LIKELY_POOLS]
    running = _running(problem)
    keep = np.union1d(np.flatnonzero((values > 1e-9) | (running > 0)), order)
    bounds = _cost_bounds(problem)
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
) -> NDArray[np.int64] | None:
    narrow = _subset(problem, keep)
    narrow_model = build_model(narrow)
    result = run_model(
        narrow_model,
        backend="highspy",
        start=None if start is None else plan_columns(narrow, narrow_model, start[keep]),
    )
    if result is None:
        return None
    counts = np.zeros(problem.n, dtype=np.int64)
    counts[keep] = np.rint(result[: len(keep)]).astype(np.int64)
    return counts


def _restricted_plan(problem: Problem) -> NDArray[np.int64] | None:
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


def _subset(problem: Problem, keep: NDArray[np.int64]) -> Problem:
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
    )


# --- describing a solution ----------------------------------------------------------------


def _describe(problem: Problem, counts: NDArray[np.int64], solve_s: float) -> Solution:
    x = counts.astype(np.float64)
    g = problem.goodput_tokens_per_second
    total = float(g @ x)
    after, worst = _after_worst_loss(problem, x)
    return Solution(
        status="optimal",
        counts=counts,
        cost_usd_per_hour=float(problem.cost_usd_per_hour @ x),
        switching_usd_per_hour=_switching(problem, x),
        tokens_per_second=total,
        tokens_per_second_after_worst_loss=after,
        worst_loss_group=worst,
        binding=_binding(problem, x, total),
        solve_s=solve_s,
        at_cap=(x >= problem.upper - FEASIBILITY_TOL) & (x > 0),
    )


def _infeasible(problem: Problem, infeasibility: Infeasibility, solve_s: float) -> Solution:
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
    lost = _group_sums(problem, problem.goodput_tokens_per_second * x)
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
        lost = _group_sums(problem, g * x)
        for name, value in zip(problem.hedge_group_names, lost, strict=True):
            if value > 0 and total - value - problem.slo_tokens_per_second < step:
                names.append(f"hedge:{name}")
    if problem.quota_row is not None:
        names += [f"quota:{name}" for name in _tight_quotas(problem, x.astype(np.int64))]
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


def _tight_quotas(problem: Problem, counts: NDArray[np.int64]) -> tuple[str, ...]:
    if problem.quota_row is None or problem.vcpus_each is None:
        return ()
    assert problem.quota_limit_vcpus is not None
    used = _quota_use(problem, counts.astype(np.float64))
    # A row binds when not even the smallest member instance would still fit.
    names = []
    for k, limit in enumerate(problem.quota_limit_vcpus):
        members = np.flatnonzero(problem.quota_row == k)
        if len(members) and used[k] + problem.vcpus_each[members].min() > limit + FEASIBILITY_TOL:
            names.append(problem.quota_names[k])
    return tuple(names)


def _quota_use(problem: Problem, x: NDArray[np.float64]) -> NDArray[np.float64]:
    assert problem.quota_row is not None and problem.vcpus_each is not None
    assert problem.quota_limit_vcpus is not None
    rows = len(problem.quota_limit_vcpus)
    member = problem.quota_row >= 0
    return np.bincount(
        problem.quota_row[member],
        weights=(problem.vcpus_each * x)[member],
        minlength=rows,
    ).astype(np.float64)


def _group_sums(problem: Problem, values: NDArray[np.float64]) -> NDArray[np.float64]:
    member = problem.hedge_group >= 0
    return np.bincount(
        problem.hedge_group[member],
        weights=values[member],
        minlength=len(problem.hedge_group_names),
    ).astype(np.float64)


def _running(problem: Problem) -> NDArray[np.int64]:
    if problem.running is None:
        return np.zeros(problem.n, dtype=np.int64)
    return np.asarray(problem.running, dtype=np.int64)


def _switch_cost(problem: Problem) -> NDArray[np.float64]:
    if problem.switch_cost_usd_per_hour is None:
        return np.zeros(problem.n)
    return np.asarray(problem.switch_cost_usd_per_hour, dtype=np.float64)


def _switching(problem: Problem, x: NDArray[np.float64]) -> float:
    new = np.maximum(x - _running(problem), 0)
    return float(_switch_cost(problem) @ new)


# --- diagnosis helpers --------------------------------------------------------------------


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
    a_matrix = sp.vstack(
        [sp.hstack([model.a, sp.csr_array((model.a.shape[0], 1))]), sp.csr_array(extra_rows)]
    ).tocsr()
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
    lost = _group_sums(problem, g * x)
    after = total - float(lost.max()) if groups else total
    capping = tuple(
        name
        for name, value in zip(problem.hedge_group_names, lost, strict=True)
        if value > 0 and total - value <= after + FEASIBILITY_TOL
    )
    if not capping:
        # The best plan holds no spot at all: name the groups whose spot could have helped.
        upper = np.where(np.isfinite(problem.upper), problem.upper, 1.0)
        obtainable = _group_sums(problem, g * upper)
        capping = tuple(
            name
            for name, value in zip(problem.hedge_group_names, obtainable, strict=True)
            if value > 0
        )
    return after, capping, x.astype(np.int64)
