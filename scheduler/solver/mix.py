r"""The request mix: each bucket's share of the load split over the pools (an exact LP inside
the MILP), for the plan as a whole and again after each hedge group's loss.

Notation (beside the package docstring's)
----------------------------------------
Buckets k = 1..K of the workload, with ``w_k`` the bucket's share of the output tokens
(``sum_k w_k = 1``) and ``g_pk`` the goodput of one instance of pool p when it serves bucket k
only (0: it cannot). Pools with the same goodput row (the same instance type) form a class
``c(p)``; a class's instances are interchangeable for routing, so routing is per class.
Scenarios s: ``0`` (nothing lost; demand ``D_0 = R``) and, with the hedge, each hedge group a
(its spot pools lost; demand ``D_a = S``). Continuous ``t_sck >= 0``: the tok/s of bucket k
routed to class c in scenario s (only where ``w_k > 0`` and ``g_ck > 0``).

Rows (family ``mix``)
---------------------
    (mix demand)    sum_c t_sck >= w_k D_s                           every s, k
    (mix capacity)  sum_k t_sck / g_ck - sum_{p in c, a(p) != s} x_p <= 0    every s, c

An instance serving a share of its time on each bucket makes ``sum_k t_k / g_k <= 1`` of them
(time-slicing, as Mélange's slices); so a plan meets the mix in scenario s exactly when some
routing meets these rows, and the hedge holds for the whole mix after the worst loss because
every group's scenario is routed on its own (the load balancer re-routes after a loss). The
single-number rows of the package docstring stay, written on ``g_p = max_k g_pk`` (over the
buckets with ``w_k > 0``): every plan that meets the mix rows meets them (a class serves at most
``max_k g_ck`` tok/s per instance), so they are implied, and their cuts still tighten the LP.
The cost bound of :func:`scheduler.solver.model.cost_upper_bounds` uses ``min_k g_pk`` over the
buckets the pool serves instead (a pool never needs more instances than serving all demand of
its slowest bucket takes). With one bucket the mix rows say what the single-number rows say.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog

from scheduler.solver.problem import FEASIBILITY_TOL, Mix, Problem

#: A mix row family: (column indices, values, lower bound, upper bound) per row.
Row = tuple[NDArray[np.int64], NDArray[np.float64], float, float]


def max_goodput(mix: Mix) -> NDArray[np.float64]:
    """``g_p = max_k g_pk`` over the buckets with a share: the single-number rows' goodput."""
    served = mix.goodput[:, mix.share > 0]
    return served.max(axis=1) if served.size else np.zeros(len(mix.goodput))


def slowest_goodput(mix: Mix) -> NDArray[np.float64]:
    """``min_k g_pk`` over the buckets with a share that the pool serves (0 when none)."""
    served = np.where(mix.goodput[:, mix.share > 0] > 0, mix.goodput[:, mix.share > 0], np.inf)
    slowest = served.min(axis=1) if served.size else np.full(len(mix.goodput), np.inf)
    return np.where(np.isfinite(slowest), slowest, 0.0)


def classes(mix: Mix) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The distinct goodput rows (one per class) and each pool's class index."""
    rows, inverse = np.unique(mix.goodput, axis=0, return_inverse=True)
    return rows, np.asarray(inverse, dtype=np.int64).reshape(-1)


def scenarios(problem: Problem) -> list[tuple[int, float]]:
    """(lost hedge group, demand) per scenario: (-1, R) first, then (a, S) per group a."""
    out = [(-1, problem.required_tokens_per_second)]
    if problem.hedge:
        out += [(a, problem.slo_tokens_per_second) for a in range(len(problem.hedge_group_names))]
    return out


def column_count(problem: Problem) -> int:
    """Routing columns the mix adds to the model."""
    if problem.mix is None:
        return 0
    rows, _ = classes(problem.mix)
    return len(scenarios(problem)) * int(np.count_nonzero(_routable(problem.mix, rows)))


def mix_rows(problem: Problem, first_col: int) -> list[Row]:
    """The mix demand and capacity rows, over the x columns and the routing columns from
    ``first_col`` on (scenario-major, then class, then bucket)."""
    mix = problem.mix
    assert mix is not None
    rows, class_of = classes(mix)
    routable = _routable(mix, rows)
    pairs = np.argwhere(routable)  # (class, bucket) per routing column within a scenario
    per_scenario = len(pairs)
    out: list[Row] = []
    for s, (lost, demand) in enumerate(scenarios(problem)):
        base = first_col + s * per_scenario
        for k in np.flatnonzero(mix.share > 0):
            columns = base + np.flatnonzero(pairs[:, 1] == k)
            out.append((columns, np.ones(len(columns)), float(mix.share[k] * demand), np.inf))
        surviving = problem.hedge_group != lost if lost >= 0 else np.ones(problem.n, dtype=bool)
        for c in range(len(rows)):
            mine = np.flatnonzero(pairs[:, 0] == c)
            members = np.flatnonzero((class_of == c) & surviving)
            if not len(mine):
                continue
            out.append(
                (
                    np.concatenate([base + mine, members]).astype(np.int64),
                    np.concatenate([1.0 / rows[c, pairs[mine, 1]], -np.ones(len(members))]),
                    -np.inf,
                    0.0,
                )
            )
    return out


def mix_capacity(problem: Problem, counts: NDArray[np.int64], *, lost_group: int = -1) -> float:
    """The most tok/s the plan ``counts`` serves in the mix's proportions (after losing
    ``lost_group``'s spot pools when it is >= 0): max L with a routing of ``L w_k`` per bucket."""
    mix = problem.mix
    assert mix is not None
    x = np.asarray(counts, dtype=np.float64)
    if lost_group >= 0:
        x = np.where(problem.hedge_group == lost_group, 0.0, x)
    rows, class_of = classes(mix)
    instances = np.bincount(class_of, weights=x, minlength=len(rows))
    routable = _routable(mix, rows)
    pairs = np.argwhere(routable)
    buckets = np.flatnonzero(mix.share > 0)
    if not len(pairs) or not len(buckets):
        return 0.0
    # Columns: t per (class, bucket) pair, then L. Maximise L.
    m = len(pairs)
    objective = np.zeros(m + 1)
    objective[m] = -1.0
    a_ub: list[NDArray[np.float64]] = []
    b_ub: list[float] = []
    for k in buckets:  # L w_k - sum_c t_ck <= 0
        row = np.zeros(m + 1)
        row[np.flatnonzero(pairs[:, 1] == k)] = -1.0
        row[m] = mix.share[k]
        a_ub.append(row)
        b_ub.append(0.0)
    for c in range(len(rows)):  # sum_k t_ck / g_ck <= X_c
        mine = np.flatnonzero(pairs[:, 0] == c)
        if len(mine):
            row = np.zeros(m + 1)
            row[mine] = 1.0 / rows[c, pairs[mine, 1]]
            a_ub.append(row)
            b_ub.append(float(instances[c]))
    result = linprog(objective, A_ub=np.array(a_ub), b_ub=np.array(b_ub), method="highs")
    return float(-result.fun) if result.status == 0 else 0.0


def mix_violations(problem: Problem, counts: NDArray[np.int64]) -> list[str]:
    """The mix rows ``counts`` cannot meet by any routing: ``mix`` (nothing lost) and
    ``mix-hedge:GROUP``."""
    bad: list[str] = []
    for lost, demand in scenarios(problem):
        capacity = mix_capacity(problem, counts, lost_group=lost)
        if capacity < demand - FEASIBILITY_TOL * max(1.0, demand):
            bad.append("mix" if lost < 0 else f"mix-hedge:{problem.hedge_group_names[lost]}")
    return bad


def routing(problem: Problem, counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """A routing of the plan (n x K, tok/s of each bucket per pool) at demand R, nothing lost:
    each bucket goes where it uses the least instance time (the LP minimising
    ``sum t_ck / g_ck``), and a class's share is split over its pools by instance count."""
    mix = problem.mix
    assert mix is not None
    x = np.asarray(counts, dtype=np.float64)
    rows, class_of = classes(mix)
    instances = np.bincount(class_of, weights=x, minlength=len(rows))
    pairs = np.argwhere(_routable(mix, rows) & (instances[:, None] > 0))
    out = np.zeros(mix.goodput.shape)
    if not len(pairs):
        return out
    demand = problem.required_tokens_per_second
    time_per_token = 1.0 / rows[pairs[:, 0], pairs[:, 1]]
    a_ub, b_ub = [], []
    for k in np.flatnonzero(mix.share > 0):
        a_ub.append(-(pairs[:, 1] == k).astype(np.float64))
        b_ub.append(-float(mix.share[k] * demand))
    for c in np.flatnonzero(instances > 0):
        a_ub.append(np.where(pairs[:, 0] == c, time_per_token, 0.0))
        b_ub.append(float(instances[c]))
    result = linprog(time_per_token, A_ub=np.array(a_ub), b_ub=np.array(b_ub), method="highs")
    if result.status != 0:
        return out
    for (c, k), value in zip(pairs, result.x, strict=True):
        members = np.flatnonzero(class_of == c)
        out[members, k] = value * x[members] / instances[c]
    return out


def _routable(mix: Mix, rows: NDArray[np.float64]) -> NDArray[np.bool_]:
    return (rows > 0) & (mix.share > 0)[None, :]
