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
    (two losses) T - sum_{p: a(p) in {a, b}} g_p x_p >= S for every pair a < b, when the plan
                 must survive two losses (two-az); written as the two largest group losses,
                 w_a + u >= sum_{a(p) = a} g_p x_p, w, u >= 0, T - 2 u - sum_a w_a >= S
                 (exact; see :mod:`.model`)
    (quota)      sum_{p: k(p) = k} q_p x_p <= Q_k         for every quota row k
    (share)      g_p x_p - m T <= 0                       for every pool, when m < 1
    (budget)     sum_p c_p x_p <= B                       when a budget is set
    (switch)     y_p - x_p >= -r_p                        for every pool with r_p > 0
    (limit)      the objective <= L                        only in :func:`solve_below`, for a
                                                          caller that can use a plan only
                                                          below L (the search stops there)
    (bounds)     0 <= x_p <= u_p,  x_p integer

Strengthening (exact, the same integer plans and optimum; see :func:`.model.capped` and
:func:`.model.cost_upper_bounds`): when some pool's goodput exceeds the SLO S, the hedge rows are
written on ``H = sum_p min(g_p, S) x_p`` instead of T (one more column and row), and when one
exceeds R a row ``sum_p min(g_p, R) x_p >= R`` joins the throughput bound; for the cost
objective each pool's bound becomes ``min(u_p, ceil(max(R, S) / g_p))``. The LP relaxation
otherwise meets the SLO with fractions of an instance far larger than it, and sits 12-25% below
the optimum.

The hedge loss-level cuts (exact too; see :func:`.model.loss_levels`): for each distinct hedge
goodput ``gamma`` of a hedged pool, with ``B_gamma = sum_{p hedged, h_p >= gamma} h_p x_p``,

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
against every row, bound and integrality before they are trusted (:func:`.check.check_solution`).

When the problem is infeasible, :func:`solve` finds which family of constraints stops it by
adding them one at a time (caps, quotas, hedge, pool share, budget) and measuring the most the
earlier families allow; see :class:`.problem.Infeasibility`.

Layout
------
Stateless and thread-safe: every result (counts, MIP gap, relaxation bound and duals) travels
in return values, so different problems may be solved in parallel threads.

- :mod:`.problem`: the inputs and outputs (:class:`Problem`, :class:`Solution`,
  :class:`Infeasibility`) and per-pool sums;
- :mod:`.model`: the row families above as a sparse matrix (:func:`build_model`);
- :mod:`.backends`: HiGHS through highspy or scipy (:func:`run_model`);
- :mod:`.narrowing`: the exact reduced solve of large models;
- :mod:`.diagnosis`: which family makes a problem infeasible, and which rows bind;
- :mod:`.check`: the after-solve check; :mod:`.bounds`: cheap lower bounds on the cost;
- :mod:`.solving`: :func:`solve`, which ties them together.
"""

from scheduler.solver.backends import MIP_ABS_GAP, MIP_REL_GAP, Run, run, run_model
from scheduler.solver.bounds import cost_lower_bound
from scheduler.solver.check import check_solution, objective_usd_per_hour, violated
from scheduler.solver.diagnosis import diagnose
from scheduler.solver.model import TIE_BREAK, Model, build_model, plan_columns
from scheduler.solver.narrowing import LIKELY_POOLS, REDUCE_FROM_POOLS
from scheduler.solver.problem import (
    FEASIBILITY_TOL,
    Backend,
    Family,
    Infeasibility,
    Problem,
    Solution,
    SolverError,
)
from scheduler.solver.solving import solve, solve_below

__all__ = [
    "FEASIBILITY_TOL",
    "LIKELY_POOLS",
    "MIP_ABS_GAP",
    "MIP_REL_GAP",
    "REDUCE_FROM_POOLS",
    "TIE_BREAK",
    "Backend",
    "Family",
    "Infeasibility",
    "Model",
    "Problem",
    "Run",
    "Solution",
    "SolverError",
    "build_model",
    "check_solution",
    "cost_lower_bound",
    "diagnose",
    "objective_usd_per_hour",
    "plan_columns",
    "run",
    "run_model",
    "solve",
    "solve_below",
    "violated",
]
