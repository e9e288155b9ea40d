"""The planning MILP against brute-force enumeration, and its after-solve check."""

from __future__ import annotations

import dataclasses
import itertools
from typing import cast

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler import solver
from scheduler.solver import (
    Backend,
    Problem,
    SolverError,
    check_solution,
    objective_usd_per_hour,
    solve,
    violated,
)
from scheduler.solver.model import loss_levels


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    """A handful of pools over 2-3 hedge groups, small caps, and optional side constraints."""
    n = draw(st.integers(2, 5))
    groups = draw(st.integers(2, 3))
    spot = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    cost = np.array(draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)), float) / 4
    goodput = np.array(draw(st.lists(st.integers(1, 8), min_size=n, max_size=n)), float) * 50
    upper = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
    group = np.array([draw(st.integers(0, groups - 1)) if s else -1 for s in spot], dtype=np.int64)
    slo = float(draw(st.integers(1, 12)) * 50)
    headroom = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))
    quota_rows = draw(st.integers(0, 2))
    quota_row = vcpus = limits = None
    if quota_rows:
        quota_row = np.array(
            draw(st.lists(st.integers(-1, quota_rows - 1), min_size=n, max_size=n)), np.int64
        )
        vcpus = np.array(draw(st.lists(st.sampled_from([4, 8, 48]), min_size=n, max_size=n)), float)
        limits = np.array(
            draw(st.lists(st.integers(0, 120), min_size=quota_rows, max_size=quota_rows)), float
        )
    running = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int64)
    with_switching = draw(st.booleans())
    return Problem(
        cost_usd_per_hour=cost,
        goodput_tokens_per_second=goodput,
        upper=upper,
        hedge_group=group,
        hedge_group_names=tuple(f"az{a}" for a in range(groups)),
        slo_tokens_per_second=slo,
        required_tokens_per_second=slo * (1 + headroom),
        hedge=draw(st.booleans()),
        # Two losses: every pair of groups (the two-az hedge).
        hedge_losses=draw(st.sampled_from([1, 1, 2])),
        quota_row=quota_row,
        vcpus_each=vcpus,
        quota_limit_vcpus=limits,
        quota_names=tuple(f"q{k}" for k in range(quota_rows)),
        max_pool_share=draw(st.sampled_from([1.0, 1.0, 0.5, 0.7])),
        budget_usd_per_hour=draw(st.sampled_from([None, None, 5.0, 15.0])),
        running=running if with_switching else None,
        switch_cost_usd_per_hour=cost * 0.1 if with_switching else None,
        risk=np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))),
    )


def brute_force(problem: Problem) -> float | None:
    """The least objective over every count vector within the bounds; None if none is valid."""
    best: float | None = None
    ranges = [range(int(u) + 1) for u in problem.upper]
    for combo in itertools.product(*ranges):
        counts = np.array(combo, dtype=np.int64)
        if violated(problem, counts):
            continue
        value = objective_usd_per_hour(problem, counts)
        if best is None or value < best:
            best = value
    return best


@pytest.mark.parametrize(
    "backend", ["highspy", "scipy", "highspy-narrowed", "highspy-narrowed-few"]
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems())
def test_solver_matches_brute_force(problem: Problem, backend: str) -> None:
    """Each backend, and the exact narrowing of large models (forced here on small ones; "few":
    its first plan from a single pool besides the LP's, often infeasible, so the fallback runs)."""
    expected = brute_force(problem)
    if backend.startswith("highspy-narrowed"):
        likely = 1 if backend.endswith("few") else solver.LIKELY_POOLS
        solution = solve(problem, backend="highspy", reduce_from_pools=0, likely_pools=likely)
    else:
        solution = solve(problem, backend=cast(Backend, backend))
    if expected is None:
        assert solution.status == "infeasible"
        assert solution.infeasibility is not None
        return
    assert solution.status == "optimal"
    assert violated(problem, solution.counts) == []
    assert objective_usd_per_hour(problem, solution.counts) == pytest.approx(expected, rel=1e-6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_valid_plan_meets_every_row_of_the_model(problem: Problem) -> None:
    """The strengthening (capped goodputs, the hedge loss-level cuts) removes no integer plan:
    every count vector that breaks no constraint meets every row and bound of the model."""
    model = solver.build_model(problem, cost_bounds=False)
    ranges = [range(int(u) + 1) for u in problem.upper]
    checked = 0
    for combo in itertools.product(*ranges):
        counts = np.array(combo, dtype=np.int64)
        if violated(problem, counts):
            continue
        columns = solver.plan_columns(problem, model, counts)
        rows = model.a @ columns
        assert np.all(rows >= model.row_lower - 1e-6), counts
        assert np.all(rows <= model.row_upper + 1e-6), counts
        assert np.all(columns >= model.lower - 1e-6) and np.all(columns <= model.upper + 1e-6)
        checked += 1
    if problem.hedge and np.any(problem.hedge_group >= 0) and checked:
        assert len(loss_levels(problem)[0]) > 0


def _ten_zones() -> Problem:
    """Ten zones of one pool each (1,000 tok/s at 1 $/h) and an SLO of 5,000 tok/s."""
    n = 10
    return Problem(
        cost_usd_per_hour=np.ones(n),
        goodput_tokens_per_second=np.full(n, 1000.0),
        upper=np.full(n, 5.0),
        hedge_group=np.arange(n, dtype=np.int64),
        hedge_group_names=tuple(f"az{a}" for a in range(n)),
        slo_tokens_per_second=5000.0,
        required_tokens_per_second=5000.0,
    )


def test_loss_level_cut_lifts_the_relaxation_to_one_whole_instance() -> None:
    """Without the cut the relaxation of :func:`_ten_zones` spreads 5,000 x 10/9 tok/s and loses
    0.56 of an instance per zone; with it, it must carry the SLO plus one whole instance, which
    is the optimum (six instances)."""
    problem = _ten_zones()
    assert solver.cost_lower_bound(problem) == pytest.approx(6.0, rel=1e-6)
    assert solve(problem).cost_usd_per_hour == pytest.approx(6.0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_cost_lower_bound_is_below_every_plan(problem: Problem) -> None:
    """The LP bound and the cost-per-tok/s bound never exceed the cost (switching aside) of any
    valid plan; the LP bound says None only when there is none."""
    bound = solver.cost_lower_bound(problem)
    quick = solver.cost_lower_bound(problem, enough=0.0)
    cheapest: float | None = None
    for combo in itertools.product(*[range(int(u) + 1) for u in problem.upper]):
        counts = np.array(combo, dtype=np.int64)
        if not violated(problem, counts):
            cost = float(problem.cost_usd_per_hour @ counts)
            cheapest = cost if cheapest is None else min(cheapest, cost)
    if cheapest is None:
        return  # the relaxation may still hold a fractional plan
    assert bound is not None and quick is not None
    assert bound <= cheapest + 1e-7
    assert quick <= cheapest + 1e-7


def test_the_rate_bound_counts_the_hedge_loss() -> None:
    """In :func:`_ten_zones` any hedged plan carries 6,000 tok/s, so 6 $/h is a bound without
    the LP (and the optimum); without the hedge 5,000 tok/s, 5 $/h."""
    problem = _ten_zones()
    assert solver.cost_lower_bound(problem, enough=5.9) == pytest.approx(6.0)
    unhedged = dataclasses.replace(problem, hedge=False)
    assert solver.cost_lower_bound(unhedged, enough=0.0) == pytest.approx(5.0)


@settings(max_examples=100, deadline=None)
@given(problems())
def test_hedge_survives_losing_any_group(problem: Problem) -> None:
    """Knock out each group's spot capacity from the plan: the rest still meets the SLO."""
    if not problem.hedge:
        return
    solution = solve(problem)
    if solution.status != "optimal":
        return
    g = problem.goodput_tokens_per_second
    for a in range(len(problem.hedge_group_names)):
        survivors = np.where(problem.hedge_group == a, 0, solution.counts)
        assert float(g @ survivors) >= problem.slo_tokens_per_second - 1e-6


def _two_az_problem(**overrides: object) -> Problem:
    base: dict[str, object] = {
        # Two cheap spot pools (one per AZ) and an on-demand pool at triple price.
        "cost_usd_per_hour": np.array([1.0, 1.1, 3.0]),
        "goodput_tokens_per_second": np.array([100.0, 100.0, 100.0]),
        "upper": np.array([10.0, 10.0, 10.0]),
        "hedge_group": np.array([0, 1, -1]),
        "hedge_group_names": ("use1-az1", "use1-az2"),
        "slo_tokens_per_second": 300.0,
        "required_tokens_per_second": 300.0,
    }
    base.update(overrides)
    return Problem(**base)  # type: ignore[arg-type]


def test_hedge_spreads_spot_over_zones() -> None:
    solution = solve(_two_az_problem())
    # Either AZ alone must carry 300 tok/s: 3 + 3 spot beats any on-demand mix.
    assert solution.counts.tolist() == [3, 3, 0]
    assert solution.tokens_per_second_after_worst_loss == 300.0
    assert "hedge:use1-az1" in solution.binding


def test_without_hedge_the_cheapest_pool_takes_everything() -> None:
    solution = solve(_two_az_problem(hedge=False))
    assert solution.counts.tolist() == [3, 0, 0]
    assert solution.tokens_per_second_after_worst_loss == 0.0
    assert solution.worst_loss_group == "use1-az1"


def test_ties_go_to_the_lower_risk_pool() -> None:
    problem = _two_az_problem(
        cost_usd_per_hour=np.array([1.0, 1.0, 3.0]),
        hedge=False,
        risk=np.array([0.9, 0.1, 0.0]),
    )
    assert solve(problem).counts.tolist() == [0, 3, 0]
    flipped = _two_az_problem(
        cost_usd_per_hour=np.array([1.0, 1.0, 3.0]), hedge=False, risk=np.array([0.1, 0.9, 0.0])
    )
    assert solve(flipped).counts.tolist() == [3, 0, 0]


def test_running_fleet_is_kept_when_the_market_is_unchanged() -> None:
    first = solve(_two_az_problem())
    again = solve(
        _two_az_problem(
            running=first.counts, switch_cost_usd_per_hour=np.array([1.0, 1.1, 3.0]) * 10 / 60 / 24
        )
    )
    assert again.counts.tolist() == first.counts.tolist()
    assert again.switching_usd_per_hour == 0.0


def test_switching_cost_holds_a_fleet_until_the_saving_pays() -> None:
    # Running 3+3 in pools now priced 1.1 and 1.0; a new pool at 1.095 saves 0.005 $/h per
    # instance, less than a start-up of 15 min amortised over 24 h (about 0.011 $/h).
    running = np.array([3, 3, 0, 0])
    problem = _two_az_problem(
        cost_usd_per_hour=np.array([1.1, 1.0, 3.0, 1.095]),
        goodput_tokens_per_second=np.full(4, 100.0),
        upper=np.full(4, 10.0),
        hedge_group=np.array([0, 1, -1, 0]),
        running=running,
        switch_cost_usd_per_hour=np.array([1.1, 1.0, 3.0, 1.095]) * 0.25 / 24,
    )
    assert solve(problem).counts.tolist() == [3, 3, 0, 0]
    # Without the switching cost the cheaper pool wins.
    moved = solve(_two_az_problem(**{**problem.__dict__, "switch_cost_usd_per_hour": None}))
    assert moved.counts.tolist() == [0, 3, 0, 3]


def test_quota_limits_are_respected_and_reported() -> None:
    problem = _two_az_problem(
        quota_row=np.array([0, 0, 1]),
        vcpus_each=np.array([8.0, 8.0, 8.0]),
        quota_limit_vcpus=np.array([32.0, 1000.0]),
        quota_names=("us-east-1 spot G/VT", "us-east-1 on-demand G/VT"),
    )
    solution = solve(problem)
    assert violated(problem, solution.counts) == []
    assert solution.counts[:2].sum() <= 4
    assert "quota:us-east-1 spot G/VT" in solution.binding


def test_infeasible_quota_names_the_row_and_the_reachable_throughput() -> None:
    problem = _two_az_problem(
        quota_row=np.array([0, 0, 0]),
        vcpus_each=np.array([8.0, 8.0, 8.0]),
        quota_limit_vcpus=np.array([16.0]),
        quota_names=("us-east-1 G/VT",),
    )
    solution = solve(problem)
    assert solution.status == "infeasible"
    assert solution.infeasibility is not None
    assert solution.infeasibility.family == "quota"
    assert solution.infeasibility.achievable == 200.0
    assert solution.infeasibility.binding == ("us-east-1 G/VT",)


def test_infeasible_hedge_reports_what_survives_the_worst_loss() -> None:
    # Only spot in one AZ: losing it leaves nothing.
    problem = _two_az_problem(upper=np.array([10.0, 0.0, 0.0]))
    solution = solve(problem)
    assert solution.infeasibility is not None
    assert solution.infeasibility.family == "hedge"
    assert solution.infeasibility.achievable == 0.0
    assert solution.infeasibility.binding == ("use1-az1",)


def test_infeasible_capacity_and_budget() -> None:
    capped = solve(_two_az_problem(upper=np.array([1.0, 1.0, 0.0])))
    assert capped.infeasibility is not None
    assert capped.infeasibility.family == "capacity"
    assert capped.infeasibility.achievable == 200.0
    broke = solve(_two_az_problem(budget_usd_per_hour=5.0))
    assert broke.infeasibility is not None
    assert broke.infeasibility.family == "budget"
    assert broke.infeasibility.achievable == pytest.approx(6.3)


def test_pool_share_spreads_capacity() -> None:
    problem = _two_az_problem(hedge=False, max_pool_share=0.5)
    solution = solve(problem)
    shares = problem.goodput_tokens_per_second * solution.counts
    assert shares.max() <= 0.5 * shares.sum()
    assert solution.counts.tolist() == [2, 2, 0]


def test_check_solution_rejects_a_plan_that_breaks_a_row() -> None:
    problem = _two_az_problem()
    with pytest.raises(SolverError, match="hedge:use1-az1"):
        check_solution(problem, np.array([3, 0, 0]))
    assert violated(problem, np.array([3, 3, 0])) == []
    assert violated(problem, np.array([11, 3, 0])) == ["bounds"]


def test_infeasible_without_any_hedge_group_is_diagnosed() -> None:
    # On-demand only (no hedge groups), and no pool may hold more than 30%: two pools can't.
    problem = Problem(
        cost_usd_per_hour=np.array([1.0, 2.0]),
        goodput_tokens_per_second=np.array([100.0, 100.0]),
        upper=np.array([np.inf, np.inf]),
        hedge_group=np.array([-1, -1]),
        hedge_group_names=(),
        slo_tokens_per_second=300.0,
        required_tokens_per_second=300.0,
        max_pool_share=0.3,
    )
    solution = solve(problem)
    assert solution.infeasibility is not None
    assert solution.infeasibility.family == "pool_share"


@pytest.mark.parametrize("narrowed", [False, True])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(), share=st.sampled_from([0.5, 0.99, 1.01, 1.5]))
def test_solve_below_finds_the_optimum_only_under_the_limit(
    problem: Problem, share: float, narrowed: bool
) -> None:
    """Below a limit under the optimum no plan; above it, the optimum itself (brute force), on
    the whole model and on the narrowed one (reduced-cost fixing at the limit)."""
    expected = brute_force(problem)
    limit = (expected if expected is not None else 10.0) * share
    found = solver.solve_below(problem, limit, reduce_from_pools=0 if narrowed else 10**6)
    if expected is None or share < 1:
        assert found is None
        return
    assert found is not None and found.status == "optimal"
    assert violated(problem, found.counts) == []
    assert objective_usd_per_hour(problem, found.counts) == pytest.approx(expected, rel=1e-6)
    assert found.cost_usd_per_hour == pytest.approx(float(problem.cost_usd_per_hour @ found.counts))
