"""The mix-aware MILP (scheduler.solver.mix) against brute-force enumeration with an independent
per-pool routing LP, and the single-bucket case against the single-number model."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from scheduler.solver import Backend, Problem, objective_usd_per_hour, solve
from scheduler.solver.mix import max_goodput, routing
from scheduler.solver.problem import Mix

#: Where a spot pool may run: (zone, region). Two zones share a region, so the region hedge
#: and the AZ hedges differ.
ZONES = (("az0", "r0"), ("az1", "r0"), ("az2", "r1"))
#: The planner's hedge depths in solver terms: (hedged, groups by, groups lost at once).
HEDGES = {
    "none": (False, "zone", 1),
    "az": (True, "zone", 1),
    "region": (True, "region", 1),
    "two-az": (True, "zone", 2),
}


@st.composite
def mix_problems(draw: st.DrawFn) -> Problem:
    """2-4 pools of 1-3 instance types over 2 buckets, spot pools in 3 zones of 2 regions,
    small caps, every hedge depth the planner has (none, az, region, two-az)."""
    n = draw(st.integers(2, 4))
    types = draw(st.integers(1, 3))
    type_of = draw(st.lists(st.integers(0, types - 1), min_size=n, max_size=n))
    # Per type and bucket: 0 (cannot serve) or 50..400 tok/s; each type serves some bucket.
    rows = []
    for _ in range(types):
        row = draw(st.lists(st.sampled_from([0, 1, 2, 4, 8]), min_size=2, max_size=2))
        rows.append([value * 50.0 for value in row] if any(row) else [100.0, 0.0])
    goodput = np.array([rows[t] for t in type_of])
    share_first = draw(st.sampled_from([0.0, 0.25, 0.5, 0.8, 1.0]))
    # Per pool: a zone of ZONES (spot) or -1 (on-demand, in no hedge group).
    zone = np.array(draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n)), dtype=np.int64)
    hedged, by, losses = HEDGES[draw(st.sampled_from(sorted(HEDGES)))]
    names = tuple(sorted({z[0] if by == "zone" else z[1] for z in ZONES}))
    group = np.array(
        [-1 if z < 0 else names.index(ZONES[z][0 if by == "zone" else 1]) for z in zone],
        dtype=np.int64,
    )
    cost = np.array(draw(st.lists(st.integers(1, 20), min_size=n, max_size=n)), float) / 4
    upper = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
    slo = float(draw(st.integers(1, 8)) * 50)
    mix = Mix(("small", "large"), np.array([share_first, 1 - share_first]), goodput)
    g = max_goodput(mix)
    keep = g > 0
    assume(bool(keep.any()))
    return Problem(
        cost_usd_per_hour=cost[keep],
        goodput_tokens_per_second=g[keep],
        upper=upper[keep],
        hedge_group=group[keep],
        hedge_group_names=names,
        slo_tokens_per_second=slo,
        required_tokens_per_second=slo * (1 + draw(st.sampled_from([0.0, 0.2]))),
        hedge=hedged,
        hedge_losses=losses,
        mix=mix.subset(np.flatnonzero(keep)),
    )


def serves(problem: Problem, x: np.ndarray, demand: float, alive: np.ndarray) -> bool:
    """Whether pools ``alive`` with ``x`` instances serve ``demand`` split by the shares, by an
    LP over per-pool routing variables (not the solver's per-class one)."""
    mix = problem.mix
    assert mix is not None
    n, k = mix.goodput.shape
    # Variables: fraction of pool p's instance time on bucket b, f_pb >= 0.
    a_ub, b_ub = [], []
    for p in range(n):  # sum_b f_pb <= x_p if alive else 0
        row = np.zeros(n * k)
        row[p * k : (p + 1) * k] = 1.0
        a_ub.append(row)
        b_ub.append(float(x[p]) if alive[p] else 0.0)
    for b in range(k):  # sum_p g_pb f_pb >= share_b demand
        row = np.zeros(n * k)
        row[b::k] = -mix.goodput[:, b]
        a_ub.append(row)
        b_ub.append(-float(mix.share[b] * demand) + 1e-7)
    result = linprog(np.zeros(n * k), A_ub=np.array(a_ub), b_ub=np.array(b_ub), method="highs")
    return bool(result.status == 0)


def brute_force(problem: Problem) -> float | None:
    best = None
    ranges = [range(int(u) + 1) for u in problem.upper]
    everyone = np.ones(problem.n, dtype=bool)
    for counts in itertools.product(*ranges):
        x = np.array(counts, dtype=np.int64)
        if not serves(problem, x, problem.required_tokens_per_second, everyone):
            continue
        # Every set of groups the hedge must survive losing at once: each group, or each pair.
        groups = len(problem.hedge_group_names)
        lost_sets = itertools.combinations(range(groups), min(problem.hedge_losses, groups))
        if problem.hedge and not all(
            serves(problem, x, problem.slo_tokens_per_second, ~np.isin(problem.hedge_group, lost))
            for lost in lost_sets
        ):
            continue
        cost = objective_usd_per_hour(problem, x)
        best = cost if best is None else min(best, cost)
    return best


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(mix_problems(), st.sampled_from(["scipy", "auto"]))
def test_mix_milp_matches_brute_force(problem: Problem, backend: Backend) -> None:
    expected = brute_force(problem)
    solution = solve(problem, backend=backend)
    if expected is None:
        assert solution.status == "infeasible"
        return
    assert solution.status == "optimal"
    assert abs(solution.cost_usd_per_hour - expected) <= 1e-6 * max(1.0, expected)
    # The plan's capacity in the mix's proportions meets the requirement, and the hedge.
    assert solution.tokens_per_second >= problem.required_tokens_per_second - 1e-6
    if problem.hedge:
        assert solution.tokens_per_second_after_worst_loss >= problem.slo_tokens_per_second - 1e-6
        # ... also after losing the worst pair, with two losses (by the independent check).
        if problem.hedge_losses == 2:
            for lost in itertools.combinations(range(len(problem.hedge_group_names)), 2):
                alive = ~np.isin(problem.hedge_group, lost)
                assert serves(problem, solution.counts, problem.slo_tokens_per_second, alive)
    # The routing serves each bucket's share from pools that run, within their capacity.
    assert problem.mix is not None
    routed = routing(problem, solution.counts)
    demand = problem.mix.share * problem.required_tokens_per_second
    assert np.all(routed.sum(axis=0) >= demand - 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        used = np.where(routed > 0, routed / problem.mix.goodput, 0.0).sum(axis=1)
    assert np.all(used <= solution.counts + 1e-6)


@settings(max_examples=30, deadline=None)
@given(
    goodput=st.lists(st.integers(1, 8), min_size=2, max_size=5),
    slo=st.integers(1, 12),
    hedge=st.booleans(),
)
def test_one_bucket_gives_the_single_number_answer(
    goodput: list[int], slo: int, hedge: bool
) -> None:
    n = len(goodput)
    g = np.array(goodput, dtype=float) * 50
    single = Problem(
        cost_usd_per_hour=np.linspace(1.0, 2.0, n),
        goodput_tokens_per_second=g,
        upper=np.full(n, 3.0),
        hedge_group=np.arange(n, dtype=np.int64) % 2,
        hedge_group_names=("az0", "az1"),
        slo_tokens_per_second=slo * 50.0,
        required_tokens_per_second=slo * 50.0,
        hedge=hedge,
    )
    mixed = dataclasses.replace(single, mix=Mix(("all",), np.array([1.0]), g[:, None]))
    a, b = solve(single, backend="scipy"), solve(mixed, backend="scipy")
    assert a.status == b.status
    if a.status == "optimal":
        # The same optimum (the counts may differ where plans tie).
        assert np.isclose(a.cost_usd_per_hour, b.cost_usd_per_hour)
        assert b.tokens_per_second >= single.required_tokens_per_second - 1e-6


def test_two_az_hedge_holds_for_the_whole_mix() -> None:
    """An on-demand type serves only the small bucket, one spot type per AZ only the large one.
    Rows on each pool's best bucket would let two spot instances do (after losing both their
    AZs the on-demand one still serves 400 tok/s, of the small bucket); the mix needs the large
    bucket served from the one AZ left, so one spot instance in each of the three AZs."""
    goodput = np.array([[400.0, 0.0], [0.0, 400.0], [0.0, 400.0], [0.0, 400.0]])
    problem = Problem(
        cost_usd_per_hour=np.ones(4),
        goodput_tokens_per_second=goodput.max(axis=1),
        upper=np.full(4, 3.0),
        hedge_group=np.array([-1, 0, 1, 2], dtype=np.int64),
        hedge_group_names=("az0", "az1", "az2"),
        slo_tokens_per_second=200.0,
        required_tokens_per_second=200.0,
        hedge_losses=2,
        mix=Mix(("small", "large"), np.array([0.5, 0.5]), goodput),
    )
    backends: tuple[Backend, ...] = ("scipy", "auto")
    for backend in backends:
        solution = solve(problem, backend=backend)
        assert solution.status == "optimal"
        assert solution.counts.tolist() == [1, 1, 1, 1]
        assert brute_force(problem) == solution.cost_usd_per_hour == 4.0
