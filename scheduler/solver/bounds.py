"""Lower bounds on a plan's cost without the MILP, for callers that only need to rule a move
out."""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.backends import run_model
from scheduler.solver.model import build_model
from scheduler.solver.problem import Problem, validate


def cost_lower_bound(problem: Problem, *, enough: float | None = None) -> float | None:
    """A lower bound on ``sum_p c_p x_p`` over every plan of ``problem``: the optimum of the LP
    relaxation of the strengthened model with the switching costs and the tie-break left out
    (both only add to the objective); ``None`` when even the relaxation is infeasible.

    ``enough``: a caller that only needs to know whether the bound reaches this figure gets the
    cheaper bound of :func:`rate_bound` when it does, without the LP.

    No branching: a caller that acts only when a plan saves enough against what runs (the
    rebalancer's thresholds) can rule a move out without solving the MILP. On the 869-pool
    sample universe the LP bound lies 0-6% below the optimum (500 to 50,000 tok/s).
    """
    validate(problem)
    costs_only = dataclasses.replace(
        problem, running=None, switch_cost_usd_per_hour=None, risk=None
    )
    if problem.mix is not None and problem.mix.scenario_losses is None:
        # Each group's loss routed on its own; with two losses every pair would be a block
        # (G^2 / 2), so the pairs are left to the single-number rows: still a lower bound.
        singles = tuple((a,) for a in range(len(problem.hedge_group_names)))
        costs_only = dataclasses.replace(
            costs_only, mix=dataclasses.replace(problem.mix, scenario_losses=singles)
        )
    if enough is not None:
        quick = rate_bound(costs_only)
        if quick >= enough:
            return quick
    model = build_model(costs_only)
    relaxed = dataclasses.replace(model, integrality=np.zeros_like(model.integrality))
    result = run_model(relaxed)
    if result is None:
        return None
    return float(model.c @ result)


def rate_bound(problem: Problem) -> float:
    """A bound on ``sum_p c_p x_p`` from the cheapest cost per tok/s alone (caps, quotas and
    side rows aside), in O(n).

    Every plan has ``sum_p min(g_p, R) x_p >= R`` (see :func:`scheduler.solver.model.capped`),
    so it costs at least ``R min_p c_p / min(g_p, R)``. With the hedge, a plan that runs a
    hedged pool has ``H >= S + gamma_min`` (the smallest hedge goodput of a hedged pool that may
    run; see :func:`scheduler.solver.model.loss_levels`), so it costs at least
    ``(S + gamma_min) min_p c_p / min(g_p, S)``, and one that runs none pays the unhedged
    pools' rates for R and S.
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
