"""The solver keeps no state between calls: different problems solved in parallel threads get
exactly the answers they get one after another."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from scheduler.solver import (
    REDUCE_FROM_POOLS,
    Backend,
    Problem,
    Solution,
    cost_lower_bound,
    solve,
)


def _problem(seed: int, *, pools: int, slo: float, budget: float | None = None) -> Problem:
    rng = np.random.default_rng(seed)
    groups = 12
    cost = np.round(rng.uniform(0.2, 4.0, pools), 3)
    return Problem(
        cost_usd_per_hour=cost,
        goodput_tokens_per_second=rng.choice([250.0, 500.0, 1000.0, 2000.0], pools),
        upper=rng.integers(0, 6, pools).astype(np.float64),
        hedge_group=rng.integers(-1, groups, pools),
        hedge_group_names=tuple(f"az{a}" for a in range(groups)),
        slo_tokens_per_second=slo,
        required_tokens_per_second=slo * 1.1,
        running=rng.integers(0, 2, pools),
        switch_cost_usd_per_hour=cost * 0.05,
        risk=rng.uniform(0, 1, pools),
        budget_usd_per_hour=budget,
    )


#: Small and large (narrowed) problems, both backends, and one infeasible (over budget).
CASES: list[tuple[Problem, Backend]] = [
    (_problem(1, pools=40, slo=2000.0), "highspy"),
    (_problem(2, pools=60, slo=5000.0), "scipy"),
    (_problem(3, pools=REDUCE_FROM_POOLS + 50, slo=3000.0), "auto"),
    (_problem(4, pools=REDUCE_FROM_POOLS + 100, slo=8000.0), "auto"),
    (_problem(5, pools=80, slo=4000.0, budget=0.5), "highspy"),
]


def _answer(case: int) -> tuple[Any, ...]:
    problem, backend = CASES[case]
    solution: Solution = solve(problem, backend=backend)
    return (
        solution.status,
        solution.counts.tolist(),
        solution.cost_usd_per_hour,
        solution.switching_usd_per_hour,
        solution.mip_gap,
        solution.binding,
        solution.infeasibility,
        cost_lower_bound(problem),
    )


def test_parallel_solves_match_the_serial_answers() -> None:
    serial = [_answer(case) for case in range(len(CASES))]
    assert {answer[0] for answer in serial} == {"optimal", "infeasible"}
    assert len({tuple(answer[1]) for answer in serial}) == len(CASES)
    order = [case for case in range(len(CASES)) for _ in range(4)]
    random.Random(7).shuffle(order)
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(_answer, order))
    for case, answer in zip(order, parallel, strict=True):
        assert answer == serial[case], f"case {case} differs when solved in parallel"
