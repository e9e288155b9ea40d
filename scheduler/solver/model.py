"""The row families of the planning MILP as one sparse matrix (the mathematics: the package
docstring of :mod:`scheduler.solver`).

Columns: x_0..x_{n-1}, T, y_p for the pools that already run some, H when some pool's goodput
exceeds the SLO, then one B column per hedge loss level, then (when the plan must survive any
two groups' losses) the two-loss columns u and w_a, then the request mix's columns
(:mod:`scheduler.solver.mix`). Rows, in order: total, capped throughput, hedge total, hedge (one
per group), two losses (one per group and one more), loss levels (two per level), quota (one per
row), share (one per pool), budget, switch (one per running pool), then the mix's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from scheduler.solver import mix as mix_rows
from scheduler.solver.problem import Problem, group_sums, running_counts, switch_costs

if TYPE_CHECKING:
    import scipy.sparse as sp

#: Weight of the risk tie-break relative to a pool's cost: small enough never to trade real
#: money (a plan costs at most this fraction more than the optimum), large enough for HiGHS to
#: see it with the gap below.
TIE_BREAK = 1e-6


@dataclass(frozen=True)
class Csr:
    """A sparse matrix in compressed sparse row form (scipy's layout: row ``r`` holds
    ``data[indptr[r]:indptr[r + 1]]`` at columns ``indices[...]``, sorted), built with numpy
    alone: importing scipy.sparse costs a command about 0.2 s, and HiGHS takes these arrays
    as they are. :meth:`tocsr` gives scipy's matrix to the callers that need one."""

    data: NDArray[np.float64]
    indices: NDArray[np.int32]
    indptr: NDArray[np.int32]
    shape: tuple[int, int]

    @classmethod
    def from_entries(
        cls,
        rows: NDArray[np.int64],
        cols: NDArray[np.int64],
        values: NDArray[np.float64],
        shape: tuple[int, int],
    ) -> Csr:
        """The matrix with ``values[k]`` at (``rows[k]``, ``cols[k]``); no position twice."""
        order = np.lexsort((cols, rows))
        indptr = np.zeros(shape[0] + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        return cls(
            np.asarray(values, dtype=np.float64)[order],
            cols[order].astype(np.int32),
            indptr,
            shape,
        )

    @classmethod
    def from_scipy(cls, matrix: Any) -> Csr:
        csr = matrix.tocsr()
        csr.sort_indices()
        return cls(
            np.asarray(csr.data, dtype=np.float64),
            csr.indices.astype(np.int32),
            csr.indptr.astype(np.int32),
            (int(csr.shape[0]), int(csr.shape[1])),
        )

    def __matmul__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The product with the vector ``x`` (one value per row)."""
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        products = self.data * np.asarray(x, dtype=np.float64)[self.indices]
        return np.bincount(rows, weights=products, minlength=self.shape[0]).astype(np.float64)

    def tocsr(self) -> sp.csr_array:
        import scipy.sparse as sp

        return sp.csr_array((self.data, self.indices, self.indptr), shape=self.shape)


@dataclass(frozen=True)
class Model:
    """The MILP in matrix form: min c x  s.t.  row_lower <= A x <= row_upper, bounds, integrality
    (what :func:`build_model` makes; the benchmark hands the same arrays to other solvers)."""

    c: NDArray[np.float64]
    integrality: NDArray[np.int64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    a: Csr
    row_lower: NDArray[np.float64]
    row_upper: NDArray[np.float64]
    #: Whether HiGHS may restart its search after presolving at the root (its default). The
    #: two-loss and request-mix models solve faster without (sample market: the two-az plan at
    #: 2,000 tok/s 0.58 s -> 0.31 s, the chat mix at 5,000 tok/s 1.04 s -> 0.73 s, the same
    #: optima); the others, which solve in milliseconds, a few milliseconds slower, so keep it.
    restart: bool = True


def build_model(
    problem: Problem, *, cost_bounds: bool = True, objective_limit: float | None = None
) -> Model:
    """The sparse model: columns x_0..x_{n-1}, T, then y_p for pools that already run some, then
    H when some pool's goodput exceeds the SLO (see :func:`capped`).

    ``cost_bounds``: tighten each pool's upper bound to what a cheapest plan can use (see
    :func:`cost_upper_bounds`); only valid for this objective, so models that optimise something
    else (the diagnosis) pass False. ``objective_limit``: one more row, last, that admits only
    plans whose objective (cost, switching and tie-break) is at most this (USD/h).
    """
    n = problem.n
    g = problem.goodput_tokens_per_second
    running = running_counts(problem)
    switch = switch_costs(problem)
    has_running = np.flatnonzero(running > 0)
    m = len(has_running)
    t_col = n
    hedge_g, throughput_g = capped(problem)
    h_col = n + 1 + m if hedge_g is not None else t_col
    levels, level_of = loss_levels(problem)
    b_col = n + 1 + m + (hedge_g is not None)
    groups = len(problem.hedge_group_names)
    two_losses = problem.hedge and problem.hedge_losses >= 2 and groups >= 2
    u_col = b_col + len(levels)
    mix_col = u_col + (1 + groups if two_losses else 0)
    n_cols = mix_col + mix_rows.column_count(problem)

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
    if two_losses:
        # (two losses) the two largest group losses, v_(1) + v_(2), linearised exactly:
        #   w_a + u - sum_{a(p) = a} g_p x_p >= 0 for every group a, w_a >= 0, u >= 0, and
        #   H - 2 u - sum_a w_a >= S.
        # For fixed losses v, min_{u, w} 2 u + sum_a max(0, v_a - u) = v_(1) + v_(2) (at u = v_(2)),
        # so the rows admit exactly the plans that keep S after losing any two groups, with 2 G
        # non-zeros per group instead of one row per pair (G^2 / 2 rows).
        row_g = g if hedge_g is None else hedge_g
        w_cols = u_col + 1 + np.arange(groups, dtype=np.int64)
        for a in range(groups):
            members = np.flatnonzero(problem.hedge_group == a)
            add(
                np.concatenate([[w_cols[a], u_col], members]),
                np.concatenate([[1.0, 1.0], -row_g[members]]),
                0.0,
                np.inf,
            )
        add(
            np.concatenate([[h_col, u_col], w_cols]),
            np.concatenate([[1.0, -2.0], -np.ones(groups)]),
            problem.slo_tokens_per_second,
            np.inf,
        )
    if len(levels):
        # (loss levels) B_k - B_{k-1} - sum_{level(p) = k} h_p x_p = 0, then
        #   (S + gamma_k) / S * H - gamma_k / S * B_k >= S + gamma_k
        # With two losses the cut lifts by 2 gamma_k (see :func:`loss_levels`).
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
            lift = 2 * gamma if two_losses else gamma
            add(
                np.array([h_col, b_col + k]),
                np.array([(slo + lift) / slo, -lift / slo]),
                slo + lift,
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
    if problem.mix is not None:
        for row_cols, row_vals, low, high in mix_rows.mix_rows(problem, mix_col):
            add(row_cols, row_vals, low, high)
    if objective_limit is not None:
        # (objective limit) c x <= L
        priced = np.flatnonzero(c)
        add(priced, c[priced], -np.inf, objective_limit)

    matrix = Csr.from_entries(
        np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), (r, n_cols)
    )
    lower = np.zeros(n_cols)
    lower[t_col] = problem.required_tokens_per_second
    upper = np.full(n_cols, np.inf)
    upper[:n] = cost_upper_bounds(problem) if cost_bounds else problem.upper
    integrality = np.zeros(n_cols, dtype=np.int64)
    integrality[:n] = 1
    hard = bool(two_losses) or problem.mix is not None
    return Model(c, integrality, lower, upper, matrix, np.array(lo), np.array(hi), restart=not hard)


def plan_columns(problem: Problem, model: Model, counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Every column of ``model`` for the plan ``counts``: x, T, y_p = max(x_p - r_p, 0), H."""
    n = problem.n
    x = counts.astype(np.float64)
    columns = np.zeros(len(model.c))
    columns[:n] = x
    columns[n] = float(problem.goodput_tokens_per_second @ x)
    running = running_counts(problem)
    has_running = np.flatnonzero(running > 0)
    columns[n + 1 : n + 1 + len(has_running)] = np.maximum(x[has_running] - running[has_running], 0)
    hedge_g, _ = capped(problem)
    b_col = n + 1 + len(has_running)
    if hedge_g is not None:
        columns[b_col] = float(hedge_g @ x)
        b_col += 1
    levels, level_of = loss_levels(problem)
    if len(levels):
        row_g = problem.goodput_tokens_per_second if hedge_g is None else hedge_g
        member = level_of >= 0
        per_level = np.bincount(
            level_of[member], weights=(row_g * x)[member], minlength=len(levels)
        )
        columns[b_col : b_col + len(levels)] = np.cumsum(per_level)
    groups = len(problem.hedge_group_names)
    if problem.hedge and problem.hedge_losses >= 2 and groups >= 2:
        row_g = problem.goodput_tokens_per_second if hedge_g is None else hedge_g
        lost = group_sums(problem, row_g * x)
        u = float(np.sort(lost)[-2])
        u_col = b_col + len(levels)
        columns[u_col] = u
        columns[u_col + 1 : u_col + 1 + groups] = np.maximum(lost - u, 0.0)
    if problem.mix is not None:
        routed = mix_rows.routing_columns(problem, counts)
        columns[len(columns) - len(routed) :] = routed
    return columns


def loss_levels(problem: Problem) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
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

    With two losses (every pair of groups) the cut lifts by ``2 gamma_k``:
    ``(S + 2 gamma_k) / S * H - 2 gamma_k / S * B_k >= S + 2 gamma_k``. An integer plan with
    level-k pools in two groups or more keeps ``H >= S + v_(1) + v_(2) >= S + 2 gamma_k``; one with
    them all in one group a has ``v_a >= B_k`` and ``H >= S + B_k``; and always ``H >= B_k``.
    Every such point (B, H) lies on or above the line through (0, S) and (S + 2 gamma_k,
    S + 2 gamma_k), which is the cut. On the 871-pool sample universe with trace-like risk on
    every spot pool, it cut the two-loss solve from 6.5-8.3 s to the figures in the commit log.
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


def capped(
    problem: Problem,
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """Goodputs capped at the SLO for the hedge rows and at the requirement for a throughput
    row, or None where no pool exceeds the cap (the rows on T are then already as tight).

    With integer counts, ``sum_p g_p x_p >= S`` holds exactly when ``sum_p min(g_p, S) x_p >= S``
    does (one instance of a pool with ``g_p >= S`` meets either alone; without one, the two sums
    are equal), so capping changes no integer plan. It tightens the LP relaxation, which
    otherwise covers the SLO with fractions of an instance larger than the SLO: on the 869-pool
    sample universe at 5,000 tok/s its bound rises from 1.67 to 1.91 $/h (optimum 2.01), which
    lets :func:`scheduler.solver.narrowing.solve_reduced` drop many more pools.
    """
    g = problem.goodput_tokens_per_second
    slo = problem.slo_tokens_per_second
    required = problem.required_tokens_per_second
    hedge_g = np.minimum(g, slo) if problem.hedge and slo > 0 and np.any(g > slo) else None
    throughput_g = np.minimum(g, required) if required > 0 and np.any(g > required) else None
    return hedge_g, throughput_g


def cost_upper_bounds(problem: Problem) -> NDArray[np.float64]:
    """Upper bounds no cheapest plan exceeds: ``x_p <= ceil(max(R, S) / g_p)``.

    If ``(x_p - 1) g_p >= max(R, S)``, one instance fewer still meets the throughput row
    (``T - g_p >= R``), keeps every other group's hedge row (what survives losing group b holds
    all of pool p, ``>= x_p g_p``, so it keeps ``>= S``) and leaves the pool's own group's row as
    it was; quota and budget rows only gain, and no cost is negative. So some optimum lies within
    the bound. Not with a pool-share limit (one instance fewer shrinks T, which may push another
    pool over its share) nor with negative switching costs: the bounds are then left alone.
    """
    upper = problem.upper
    if problem.max_pool_share < 1 or np.any(switch_costs(problem) < 0):
        return upper
    need = max(problem.required_tokens_per_second, problem.slo_tokens_per_second)
    if need <= 0:
        return upper
    g = problem.goodput_tokens_per_second
    if problem.mix is not None:
        # Serving all demand of its slowest bucket is the most a pool is ever needed for.
        slowest = mix_rows.slowest_goodput(problem.mix)
        return np.where(
            slowest > 0, np.minimum(upper, np.ceil(need / np.maximum(slowest, 1e-12) - 1e-9)), 0.0
        )
    # The 1e-9 keeps an exact multiple (need = k g_p) at k rather than k + 1.
    return np.minimum(upper, np.ceil(need / g - 1e-9))
