"""Pools dropped before the mix MILP (scheduler.solver.dominance): only those no cheapest plan
needs, and never both of two equal pools."""

from __future__ import annotations

import numpy as np

from scheduler.solver import Problem, solve
from scheduler.solver.dominance import undominated
from scheduler.solver.problem import Mix


def _problem(
    goodput: list[list[float]], cost: list[float], group: list[int], **kw: object
) -> Problem:
    g = np.array(goodput)
    fields: dict[str, object] = {
        "cost_usd_per_hour": np.array(cost),
        "goodput_tokens_per_second": g.max(axis=1),
        "upper": np.full(len(cost), 4.0),
        "hedge_group": np.array(group, dtype=np.int64),
        "hedge_group_names": ("az0", "az1"),
        "slo_tokens_per_second": 300.0,
        "required_tokens_per_second": 300.0,
        "mix": Mix(("small", "large"), np.array([0.5, 0.5]), g),
    }
    fields.update(kw)
    return Problem(**fields)  # type: ignore[arg-type]


def test_a_slower_dearer_pool_of_the_same_group_is_dropped() -> None:
    problem = _problem(
        [[200, 100], [150, 100], [150, 100], [400, 50]], [1.0, 1.5, 1.0, 1.0], [0, 0, 1, 0]
    )
    # Pool 1 is slower and dearer than pool 0 in the same AZ; pool 2 is in another AZ, and
    # pool 3 is faster on one bucket only: both stay.
    assert undominated(problem).tolist() == [0, 2, 3]


def test_of_two_equal_pools_one_stays() -> None:
    problem = _problem([[200, 100], [200, 100]], [1.0, 1.0], [0, 0])
    assert undominated(problem).tolist() == [0]


def test_a_capped_pool_dominates_nothing() -> None:
    # Pool 0 may hold 1 instance only, too few to serve 300 tok/s of its slowest bucket alone.
    problem = _problem(
        [[200, 100], [150, 100]], [1.0, 1.5], [0, 0], upper=np.array([1.0, 4.0]), hedge=False
    )
    assert undominated(problem).tolist() == [0, 1]
    solution = solve(problem)
    # Pool 0's one instance serves 150 small and 25 large tok/s; the other 125 large need two
    # of pool 1.
    assert solution.status == "optimal"
    assert solution.counts.tolist() == [1, 2]


def test_a_running_pool_is_kept() -> None:
    problem = _problem(
        [[200, 100], [150, 100]], [1.0, 1.5], [0, 0], running=np.array([0, 2], dtype=np.int64)
    )
    assert undominated(problem).tolist() == [0, 1]
