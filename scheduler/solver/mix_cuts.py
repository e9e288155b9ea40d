r"""The hedge cuts of a request mix (:mod:`scheduler.solver.mix`): for bucket weights ``mu``, the
hedge written on one number per pool, ``g^mu_p = max_k mu_k g_pk``, with the loss-level cuts and
the two-loss rows of the single-number model.

Why one number per pool is enough, for given weights: the capacity LP of a plan X in the mix's
proportions (max L with a routing of ``L w_k`` per bucket; :func:`.mix.mix_capacity`) has the
dual ``min_mu sum_p X_p g^mu_p`` over ``mu >= 0`` with ``sum_k mu_k w_k = 1``. So a plan serves S
after losing the set of groups A exactly when ``sum_{p: a(p) not in A} g^mu_p x_p >= S`` for
every such mu, and every plan that meets the hedge meets, for any one mu, the single-number hedge
rows written on ``g^mu``. Finitely many mu (the dual polytope's vertices) decide it, which is
why adding the weights of each scenario a plan fails (:func:`.mix_diagnosis.solve_lazily`)
ends with a plan that meets every scenario.

Rows of one cut (``h_p = min(g^mu_p, S)``, V its column):

    (cut total)       V - sum_p h_p x_p = 0
    (cut throughput)  sum_p min(g^mu_p, R) x_p >= R
    (cut hedge)       V - sum_{a(p) = a} h_p x_p >= S            every hedge group a  (one loss)
                      w_a + u - sum_{a(p) = a} h_p x_p >= 0,  V - 2 u - sum_a w_a >= S
                                                                  (two losses: every pair)
    (cut levels)      B_j - B_{j-1} - sum_{level(p) = j} h_p x_p = 0,
                      (S + m gamma_j) / S V - m gamma_j / S B_j >= S + m gamma_j   (m losses)

Capping at S (or R) changes no integer plan (:func:`.model.capped`); the two-loss rows admit
exactly the plans that keep S after losing any two groups (:func:`.model.build_model`); the
level cuts hold for every integer plan that meets the hedge rows (:func:`.model.loss_levels`,
whose proof uses only those rows and ``V >= B_j``). The level cuts are what make the LP
relaxation of the mix tight: without them it spreads fractions of an instance over many groups
(869-pool sample universe, chat mix, 5,000 tok/s: LP 1.84 $/h against the optimum's 2.15).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.problem import Problem, group_sums

#: A row: (column indices, values, lower bound, upper bound).
Row = tuple[NDArray[np.int64], NDArray[np.float64], float, float]


def loss_size(problem: Problem) -> int:
    """How many hedge groups the plan must survive losing at once: 2 with ``hedge_losses >= 2``
    and two groups or more (as the single-number model), else 1."""
    two = problem.hedge_losses >= 2 and len(problem.hedge_group_names) >= 2
    return 2 if two else 1


def cut_goodput(goodput: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """``g^mu_p = max_k mu_k g_pk`` per pool (``goodput``: n x K)."""
    return np.asarray(np.max(goodput * weights[None, :], axis=1), dtype=np.float64)


def _levels(
    problem: Problem, h: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The distinct positive ``h_p`` of hedged pools, largest first, and each pool's level
    (-1: none)."""
    level_of = np.full(problem.n, -1, dtype=np.int64)
    member = (problem.hedge_group >= 0) & (h > 0)
    if not problem.hedge or not member.any():
        return np.zeros(0), level_of
    levels = np.unique(h[member])[::-1]
    level_of[member] = np.searchsorted(-levels, -h[member])
    return levels, level_of


def cut_column_count(problem: Problem, g: NDArray[np.float64]) -> int:
    """Columns of one cut on goodput ``g``: V, the level chain, then u and w_a (two losses)."""
    h = np.minimum(g, problem.slo_tokens_per_second)
    levels, _ = _levels(problem, h)
    two = problem.hedge and loss_size(problem) == 2
    return 1 + len(levels) + (1 + len(problem.hedge_group_names) if two else 0)


def cut_rows(problem: Problem, g: NDArray[np.float64], first_col: int) -> list[Row]:
    """The rows of one cut on goodput ``g`` (module docstring), its columns from ``first_col``."""
    slo, required = problem.slo_tokens_per_second, problem.required_tokens_per_second
    h = np.minimum(g, slo)
    pools = np.arange(problem.n, dtype=np.int64)
    v_col = first_col
    out: list[Row] = [
        (np.append(pools, v_col), np.append(-h, 1.0), 0.0, 0.0),
        (pools, np.minimum(g, required), required, np.inf),
    ]
    if not problem.hedge or slo <= 0:
        return out
    levels, level_of = _levels(problem, h)
    b_col = v_col + 1
    groups = len(problem.hedge_group_names)
    m = loss_size(problem)
    if m == 1:
        for a in range(groups):
            members = np.flatnonzero((problem.hedge_group == a) & (h > 0))
            out.append((np.append(members, v_col), np.append(-h[members], 1.0), slo, np.inf))
    else:
        u_col = b_col + len(levels)
        w_cols = u_col + 1 + np.arange(groups, dtype=np.int64)
        for a in range(groups):
            members = np.flatnonzero((problem.hedge_group == a) & (h > 0))
            out.append(
                (
                    np.concatenate([[w_cols[a], u_col], members]).astype(np.int64),
                    np.concatenate([[1.0, 1.0], -h[members]]),
                    0.0,
                    np.inf,
                )
            )
        out.append(
            (
                np.concatenate([[v_col, u_col], w_cols]).astype(np.int64),
                np.concatenate([[1.0, -2.0], -np.ones(groups)]),
                slo,
                np.inf,
            )
        )
    for j, gamma in enumerate(levels):
        members = np.flatnonzero(level_of == j)
        chain = [b_col + j] + ([b_col + j - 1] if j else [])
        out.append(
            (
                np.concatenate([chain, members]).astype(np.int64),
                np.concatenate([[1.0], [-1.0] if j else [], -h[members]]),
                0.0,
                0.0,
            )
        )
        lift = m * gamma
        out.append(
            (
                np.array([v_col, b_col + j], dtype=np.int64),
                np.array([(slo + lift) / slo, -lift / slo]),
                slo + lift,
                np.inf,
            )
        )
    return out


def cut_columns(
    problem: Problem, g: NDArray[np.float64], x: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The values of one cut's columns (:func:`cut_rows`) for the plan ``x``."""
    h = np.minimum(g, problem.slo_tokens_per_second)
    out = [np.array([float(h @ x)])]
    if problem.hedge and problem.slo_tokens_per_second > 0:
        levels, level_of = _levels(problem, h)
        if len(levels):
            member = level_of >= 0
            per_level = np.bincount(
                level_of[member], weights=(h * x)[member], minlength=len(levels)
            )
            out.append(np.cumsum(per_level))
        if loss_size(problem) == 2:
            lost = group_sums(problem, h * x)
            u = float(np.sort(lost)[-2])
            out += [np.array([u]), np.maximum(lost - u, 0.0)]
    return np.concatenate(out)
