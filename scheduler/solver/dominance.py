r"""Pools no cheapest plan of a request mix needs: dropped before the MILP, which then branches
over fewer columns (exact: the optimum over the pools left is an optimum of the whole).

Pool q dominates pool p (p is dropped) when all of these hold:

1. the same hedge group (``a(q) = a(p)``; both in none counts as the same): every loss set that
   takes p's instances takes q's, and no other;
2. ``g_qk >= g_pk`` for every bucket with a share: an instance of q serves whatever time-slice
   routing an instance of p serves (the capacity LP of every scenario only gains);
3. ``c_q (1 + z_q) + s_q <= c_p (1 + z_p) + s_p`` (the objective per new instance, tie-break
   and switching cost included; :func:`scheduler.solver.model.build_model`) and ``c_q <= c_p``
   (the budget row), ``p`` runs no instance now and no switching cost is negative;
4. quotas: q is in no quota row, or in p's row with ``vcpus_q <= vcpus_p``;
5. no pool-share limit (``m = 1``; moving an instance changes who holds what share);
6. ``u_q >= max(R, S) / min_k g_qk`` (over the buckets q serves): q's cap never stops it;
7. where p and q dominate each other by 1-6, only the later pool is dropped.

Proof. Take an optimal plan with ``x_p > 0``. While ``x_q < u_q``, move one instance from p to q:
by 1 and 2 every scenario's routing still fits, by 4 no quota row grows, the budget row only
gains (3), and by 3 the objective does not rise (an instance added to q costs at most
``c_q (1 + z_q) + s_q``; p pays ``s_p`` on each of its instances since it runs none). If
``x_q = u_q`` while ``x_p > 0``, then by 6 q's instances alone serve all of the demand D of
every bucket q serves, time-sliced (``sum_k w_k D / g_qk <= D / min_k g_qk <= x_q``) in every
scenario in which q survives, which by 1 are exactly those in which p does; and p serves no
other bucket (2). So p's instances can go, at no greater cost. Either way some optimum has
``x_p = 0``. The relation is transitive and, with 7, acyclic, so dropping every dominated pool
at once keeps some dominating pool of each. Used for mix problems only (a single number per
pool is the one-bucket case; the single-number solve is left as it is).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.mix import slowest_goodput
from scheduler.solver.model import TIE_BREAK
from scheduler.solver.problem import Problem, running_counts, switch_costs


def undominated(problem: Problem) -> NDArray[np.int64]:
    """The pools no other pool dominates (module docstring), in order."""
    mix = problem.mix
    n = problem.n
    everything = np.arange(n, dtype=np.int64)
    switch = switch_costs(problem)
    if mix is None or problem.max_pool_share < 1 or np.any(switch < 0):
        return everything
    need = max(problem.required_tokens_per_second, problem.slo_tokens_per_second)
    risk = problem.risk if problem.risk is not None else np.zeros(n)
    price = problem.cost_usd_per_hour * (1 + TIE_BREAK * np.clip(risk, 0, 1)) + switch
    goodput = mix.goodput[:, mix.share > 0]
    slowest = slowest_goodput(mix)
    with np.errstate(divide="ignore"):
        uncapped = (slowest > 0) & (problem.upper >= need / np.where(slowest > 0, slowest, 1.0))
    free = running_counts(problem) == 0
    quota = problem.quota_row if problem.quota_row is not None else np.full(n, -1)
    vcpus = problem.vcpus_each if problem.vcpus_each is not None else np.zeros(n)
    dropped = np.zeros(n, dtype=bool)
    for group in np.unique(problem.hedge_group):
        members = np.flatnonzero(problem.hedge_group == group)
        if len(members) < 2:
            continue
        g = goodput[members]
        cost = problem.cost_usd_per_hour[members]
        q_quota, p_quota = quota[members][:, None], quota[members][None, :]
        # base[q, p]: conditions 1-6, q over p.
        base = (
            np.all(g[:, None, :] >= g[None, :, :], axis=2)
            & (price[members][:, None] <= price[members][None, :])
            & (cost[:, None] <= cost[None, :])
            & (
                (q_quota < 0)
                | ((q_quota == p_quota) & (vcpus[members][:, None] <= vcpus[members][None, :]))
            )
            & uncapped[members][:, None]
            & free[members][None, :]
        )
        # 7: where each dominates the other, the earlier pool stays.
        dominates = base & (~base.T | (members[:, None] < members[None, :]))
        np.fill_diagonal(dominates, False)
        dropped[members] = dominates.any(axis=0)
    return np.flatnonzero(~dropped).astype(np.int64)
