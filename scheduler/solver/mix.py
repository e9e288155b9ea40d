r"""The request mix: each bucket's share of the load split over the pools (an exact LP inside
the MILP), for the plan as a whole and again after each hedge group's loss.

Notation (beside the package docstring's)
----------------------------------------
Buckets k = 1..K of the workload, with ``w_k`` the bucket's share of the output tokens
(``sum_k w_k = 1``) and ``g_pk`` the goodput of one instance of pool p when it serves bucket k
only (0: it cannot). Pools with the same goodput row (the same instance type) form a class
``c(p)``; a class's instances are interchangeable for routing, so routing is per class.
Scenarios s: ``()`` (nothing lost; demand ``D_s = R``) and, with the hedge, each loss set A the
plan must survive (demand ``D_s = S``): every hedge group (``az``, ``region``), or every pair of
groups (``two-az``, :func:`all_losses`). Continuous ``t_sck >= 0``: the tok/s of bucket k
routed to class c in scenario s (only where ``w_k > 0`` and ``g_ck > 0``).

Rows (family ``mix``)
---------------------
    (mix demand)    sum_c t_sck >= w_k D_s                                   every s, k
    (mix capacity)  sum_k t_sck / g_ck - sum_{p in c, a(p) not in A_s} x_p <= 0    every s, c

An instance serving a share of its time on each bucket makes ``sum_k t_k / g_k <= 1`` of them
(time-slicing, as Mélange's slices); so a plan meets the mix in scenario s exactly when some
routing meets these rows, and the hedge holds for the whole mix after the worst loss because
every loss set's scenario is routed on its own (the load balancer re-routes after a loss). The
single-number rows of the package docstring stay, written on ``g_p = max_k g_pk`` (over the
buckets with ``w_k > 0``): every plan that meets the mix rows meets them (a class serves at most
``max_k g_ck`` tok/s per instance), so they are implied, and their cuts still tighten the LP.
The cost bound of :func:`scheduler.solver.model.cost_upper_bounds` uses ``min_k g_pk`` over the
buckets the pool serves instead (a pool never needs more instances than serving all demand of
its slowest bucket takes). With one bucket the mix rows say what the single-number rows say.

Lazily: a routing block per loss set is G blocks (G^2 / 2 with two losses), so
:func:`scheduler.solver.mix_diagnosis.solve_lazily` writes the loss scenarios as hedge cuts
(:mod:`scheduler.solver.mix_cuts`, exact in the limit) and routing blocks only where a cut
makes no progress, and checks every loss set of the plan it ends with (:func:`unmet_losses`):
the hedge is exact for every depth, one group or two. The risk estimate of the planner reads
``goodput_tokens_per_second`` (``max_k g_pk``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.mix_cuts import (
    Row,
    cut_column_count,
    cut_columns,
    cut_goodput,
    cut_rows,
    loss_size,
)
from scheduler.solver.problem import FEASIBILITY_TOL, Mix, Problem, group_sums

#: Instance counts of a plan, or a fractional one (the LP relaxation's).
Counts = NDArray[np.int64] | NDArray[np.float64]


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


def all_losses(problem: Problem) -> tuple[tuple[int, ...], ...]:
    """Every set of hedge groups the hedge must survive losing: each group, or each pair of
    groups with two losses (:func:`scheduler.solver.mix_cuts.loss_size`)."""
    groups = range(len(problem.hedge_group_names))
    return tuple(itertools.combinations(groups, loss_size(problem)))


def scenarios(problem: Problem) -> list[tuple[tuple[int, ...], float]]:
    """(lost hedge groups, demand) per scenario with routing rows: ((), R) first, then (A, S)
    per loss set A of ``mix.scenario_losses`` (:func:`all_losses` when None)."""
    out: list[tuple[tuple[int, ...], float]] = [((), problem.required_tokens_per_second)]
    if problem.hedge and problem.mix is not None:
        losses = problem.mix.scenario_losses
        if losses is None:
            losses = all_losses(problem)
        out += [(lost, problem.slo_tokens_per_second) for lost in losses]
    return out


def worst_losses(problem: Problem, counts: Counts) -> list[tuple[int, ...]]:
    """The loss sets that decide whether the plan ``counts`` keeps its hedge: losing more never
    leaves more (the capacity LP only loses columns), so of the sets of
    :func:`scheduler.solver.mix_cuts.loss_size` groups it is enough to try those made of groups
    that hold some of the plan, padded with empty groups where fewer hold some. A set of empty
    groups alone loses nothing: it is tried only when S > R (the plan's capacity must then
    reach S too)."""
    if not problem.hedge or not problem.hedge_group_names:
        return []
    size = loss_size(problem)
    groups = range(len(problem.hedge_group_names))
    held = counts > 1e-9
    occupied = [a for a in groups if np.any((problem.hedge_group == a) & held)]
    if len(occupied) >= size:
        return list(itertools.combinations(occupied, size))
    if not occupied and problem.slo_tokens_per_second <= problem.required_tokens_per_second:
        return []
    empty = [a for a in groups if a not in occupied]
    return [tuple(sorted(occupied + empty[: size - len(occupied)]))]


def unmet_losses(
    problem: Problem, counts: Counts, *, limit: int | None = None
) -> list[tuple[int, ...]]:
    """The loss sets (:func:`worst_losses`) after which the plan ``counts`` cannot serve S in
    the mix's proportions, worst screened first.

    A screen spares most capacity LPs: each instance time-sliced over the buckets in the mix's
    proportions serves ``r_p = 1 / sum_k w_k / g_pk`` (a routing, so a lower bound on the
    capacity), and a set whose survivors reach S so is met. ``limit``: try at most this many
    LPs (a search for cuts; the after-solve check tries them all)."""
    slo = problem.slo_tokens_per_second
    losses = worst_losses(problem, counts)
    if not losses:
        return []
    assert problem.mix is not None
    x = np.asarray(counts, dtype=np.float64)
    alone = rate_alone(problem.mix) * x
    spot = group_sums(problem, alone)
    total = float(alone.sum())
    screened = np.array([total - sum(spot[a] for a in lost) for lost in losses])
    order = [i for i in np.argsort(screened, kind="stable") if screened[i] < slo]
    if limit is not None:
        order = order[:limit]
    return [
        losses[i]
        for i in order
        if mix_capacity(problem, counts, lost=losses[i]) < slo - FEASIBILITY_TOL * max(1.0, slo)
    ]


def rate_alone(mix: Mix) -> NDArray[np.float64]:
    """tok/s of one instance serving the whole mix alone, time-sliced: ``1 / sum_k w_k / g_pk``
    (0 when it lacks a bucket with a share)."""
    served = mix.share > 0
    g = mix.goodput[:, served]
    with np.errstate(divide="ignore"):
        time_per_token = np.where(g > 0, mix.share[served][None, :] / g, np.inf).sum(axis=1)
    return np.where(np.isfinite(time_per_token), 1.0 / time_per_token, 0.0)


def loss_name(problem: Problem, lost: tuple[int, ...]) -> str:
    """The loss set's groups, joined by ``+``."""
    return "+".join(problem.hedge_group_names[a] for a in lost)


def _cut_goodputs(problem: Problem) -> list[NDArray[np.float64]]:
    mix = problem.mix
    assert mix is not None
    return [cut_goodput(mix.goodput, np.asarray(w, dtype=np.float64)) for w in mix.cuts]


def column_count(problem: Problem) -> int:
    """Columns the mix adds to the model: U_k per bucket with a share, the cuts', then
    routing."""
    if problem.mix is None:
        return 0
    rows, _ = classes(problem.mix)
    routing_count = len(scenarios(problem)) * int(np.count_nonzero(_routable(problem.mix, rows)))
    cuts = sum(cut_column_count(problem, g) for g in _cut_goodputs(problem))
    return int(np.count_nonzero(problem.mix.share > 0)) + cuts + routing_count


def mix_rows(problem: Problem, first_col: int) -> list[Row]:
    """The bucket rows, the hedge cuts and the mix demand and capacity rows, over the x
    columns, the U_k columns from ``first_col`` on, the cuts' columns, then the routing
    columns (scenario-major, then class, then bucket)."""
    mix = problem.mix
    assert mix is not None
    rows, class_of = classes(mix)
    routable = _routable(mix, rows)
    pairs = np.argwhere(routable)  # (class, bucket) per routing column within a scenario
    per_scenario = len(pairs)
    out = _bucket_rows(problem, first_col)
    first_col += int(np.count_nonzero(mix.share > 0))
    for g in _cut_goodputs(problem):
        out += cut_rows(problem, g, first_col)
        first_col += cut_column_count(problem, g)
    for s, (lost, demand) in enumerate(scenarios(problem)):
        base = first_col + s * per_scenario
        for k in np.flatnonzero(mix.share > 0):
            columns = base + np.flatnonzero(pairs[:, 1] == k)
            out.append((columns, np.ones(len(columns)), float(mix.share[k] * demand), np.inf))
        surviving = ~np.isin(problem.hedge_group, lost)
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


def _bucket_rows(problem: Problem, first_col: int) -> list[Row]:
    """(bucket total) ``U_k - sum_p g_pk x_p = 0`` with ``U_k >= w_k R``, and (bucket hedge)
    ``U_k - sum_{p: a(p) = a} g_pk x_p >= w_k S`` for every hedge group a: each bucket alone,
    served by every instance at its best, must be covered, also after each loss. Implied by
    the routing of every scenario, but written for every group (two non-zeros per pool in all),
    they tighten the LP and let :func:`solve_lazily` add few scenarios."""
    mix = problem.mix
    assert mix is not None
    out: list[Row] = []
    pools = np.arange(problem.n, dtype=np.int64)
    for j, k in enumerate(np.flatnonzero(mix.share > 0)):
        u_col = first_col + j
        g = mix.goodput[:, k]
        out.append(
            (
                np.append(pools, u_col),
                np.append(-g, 1.0),
                0.0,
                0.0,
            )
        )
        out.append(
            (
                np.array([u_col]),
                np.array([1.0]),
                float(mix.share[k] * problem.required_tokens_per_second),
                np.inf,
            )
        )
        if not problem.hedge:
            continue
        for a in range(len(problem.hedge_group_names)):
            members = np.flatnonzero((problem.hedge_group == a) & (g > 0))
            out.append(
                (
                    np.append(members, u_col),
                    np.append(-g[members], 1.0),
                    float(mix.share[k] * problem.slo_tokens_per_second),
                    np.inf,
                )
            )
    return out


def mix_capacity(problem: Problem, counts: Counts, *, lost: Sequence[int] = ()) -> float:
    """The most tok/s the plan ``counts`` serves in the mix's proportions (after losing the
    spot pools of the hedge groups ``lost``): max L with a routing of ``L w_k`` per bucket."""
    return _capacity_lp(problem, counts, lost)[0]


def capacity_weights(
    problem: Problem, counts: Counts, *, lost: Sequence[int] = ()
) -> NDArray[np.float64]:
    """The bucket weights ``mu`` (``sum_k mu_k w_k = 1``) of the capacity LP's dual at
    ``counts``: its capacity is ``sum_p x_p max_k mu_k g_pk`` over the pools left, the least
    such sum over all weights (see :mod:`scheduler.solver.mix_cuts`)."""
    return _capacity_lp(problem, counts, lost)[1]


def _capacity_lp(
    problem: Problem, counts: Counts, lost: Sequence[int]
) -> tuple[float, NDArray[np.float64]]:
    mix = problem.mix
    assert mix is not None
    x = np.asarray(counts, dtype=np.float64)
    if len(lost):
        x = np.where(np.isin(problem.hedge_group, list(lost)), 0.0, x)
    rows, class_of = classes(mix)
    instances = np.bincount(class_of, weights=x, minlength=len(rows))
    pairs = np.argwhere(_routable(mix, rows))
    buckets = np.flatnonzero(mix.share > 0)
    weights = np.zeros(len(mix.share))
    if not len(pairs) or not len(buckets):
        return 0.0, weights
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
    from scipy.optimize import linprog  # only when a mix is planned

    result = linprog(objective, A_ub=np.array(a_ub), b_ub=np.array(b_ub), method="highs")
    if result.status != 0:
        return 0.0, weights
    mu = -np.asarray(result.ineqlin.marginals[: len(buckets)], dtype=np.float64)
    mu = np.maximum(mu, 0.0)
    scale = float(mu @ mix.share[buckets])
    weights[buckets] = mu / scale if scale > 0 else 1.0
    return float(-result.fun), weights


def mix_violations(problem: Problem, counts: NDArray[np.int64]) -> list[str]:
    """The mix rows ``counts`` cannot meet by any routing: ``mix`` (nothing lost) and
    ``mix-hedge:GROUP`` (of the scenarios the problem has rows for)."""
    bad: list[str] = []
    demand = problem.required_tokens_per_second
    if mix_capacity(problem, counts) < demand - FEASIBILITY_TOL * max(1.0, demand):
        bad.append("mix")
    assert problem.mix is not None
    rowed = problem.mix.scenario_losses  # a relaxation holds only these (None: all)
    bad += [
        f"mix-hedge:{loss_name(problem, lost)}"
        for lost in unmet_losses(problem, counts)
        if rowed is None or lost in rowed
    ]
    return bad


def routing(problem: Problem, counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """A routing of the plan (n x K, tok/s of each bucket per pool) at demand R, nothing lost:
    each bucket where its tokens cost least (instance cost per hour over goodput on it), as
    far as the plan's instances allow (:func:`_class_routing`); a class's share is split over
    its pools by instance count. So a pool is labelled with the buckets it is there for, also
    when a plan bought it for the hedge and another type could serve everything today."""
    mix = problem.mix
    assert mix is not None
    x = np.asarray(counts, dtype=np.float64)
    rows, class_of = classes(mix)
    instances = np.bincount(class_of, weights=x, minlength=len(rows)).astype(np.float64)
    pairs = np.argwhere(_routable(mix, rows))
    spend = np.bincount(class_of, weights=x * problem.cost_usd_per_hour, minlength=len(rows))
    cost_each = np.divide(spend, instances, out=np.zeros(len(rows)), where=instances > 0)
    flows = _class_routing(
        mix, rows, pairs, instances, problem.required_tokens_per_second, cost_each=cost_each
    )
    out = np.zeros(mix.goodput.shape)
    if flows is None:
        return out
    for (c, k), value in zip(pairs, flows, strict=True):
        if value > 0:
            members = np.flatnonzero(class_of == c)
            out[members, k] = value * x[members] / instances[c]
    return out


def routing_columns(problem: Problem, counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """The routing columns of :func:`mix_rows` for the plan ``counts`` (a start for HiGHS):
    per scenario the least-time routing, zeros where the plan cannot meet a scenario."""
    mix = problem.mix
    assert mix is not None
    x = np.asarray(counts, dtype=np.float64)
    rows, class_of = classes(mix)
    pairs = np.argwhere(_routable(mix, rows))
    out: list[NDArray[np.float64]] = [mix.goodput[:, mix.share > 0].T @ x]
    out += [cut_columns(problem, g, x) for g in _cut_goodputs(problem)]
    for lost, demand in scenarios(problem):
        alive = np.where(np.isin(problem.hedge_group, lost), 0.0, x)
        instances = np.bincount(class_of, weights=alive, minlength=len(rows)).astype(np.float64)
        flows = _class_routing(mix, rows, pairs, instances, demand)
        out.append(flows if flows is not None else np.zeros(len(pairs)))
    return np.concatenate(out) if out else np.zeros(0)


def _class_routing(
    mix: Mix,
    rows: NDArray[np.float64],
    pairs: NDArray[np.int64],
    instances: NDArray[np.float64],
    demand: float,
    *,
    cost_each: NDArray[np.float64] | None = None,
) -> NDArray[np.float64] | None:
    """tok/s per (class, bucket) pair meeting ``w_k demand`` within the classes' instances at
    the least instance time, or None when they cannot. ``cost_each``: the hourly cost of one
    instance per class; the least instance cost ``sum t_ck c_c / g_ck`` instead (each bucket
    where it costs least, as far as the instances there allow)."""
    if not len(pairs):
        return None
    time_per_token = 1.0 / rows[pairs[:, 0], pairs[:, 1]]
    objective = time_per_token if cost_each is None else time_per_token * cost_each[pairs[:, 0]]
    a_ub, b_ub = [], []
    for k in np.flatnonzero(mix.share > 0):
        a_ub.append(-(pairs[:, 1] == k).astype(np.float64))
        b_ub.append(-float(mix.share[k] * demand))
    for c in range(len(rows)):
        a_ub.append(np.where(pairs[:, 0] == c, time_per_token, 0.0))
        b_ub.append(float(instances[c]))
    from scipy.optimize import linprog  # only when a mix is planned

    result = linprog(objective, A_ub=np.array(a_ub), b_ub=np.array(b_ub), method="highs")
    return np.asarray(result.x, dtype=np.float64) if result.status == 0 else None


def _routable(mix: Mix, rows: NDArray[np.float64]) -> NDArray[np.bool_]:
    return (rows > 0) & (mix.share > 0)[None, :]
