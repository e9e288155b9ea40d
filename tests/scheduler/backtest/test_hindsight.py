"""The hindsight bound's integer part: the cheapest whole-instance fleet reaching a goodput."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.backtest.hindsight import cheapest_cover

item = st.tuples(
    st.floats(min_value=0.05, max_value=40.0), st.floats(min_value=100.0, max_value=20_000.0)
)


@settings(max_examples=60, deadline=None)
@given(items=st.lists(item, min_size=1, max_size=4), need=st.floats(100.0, 12_000.0))
def test_cheapest_cover_is_the_brute_force_optimum(
    items: list[tuple[float, float]], need: float
) -> None:
    prices = np.array([p for p, _ in items])
    goodput = np.array([g for _, g in items])
    ranges = [range(math.ceil(need / g) + 1) for g in goodput]
    best = min(
        float(prices @ np.array(counts))
        for counts in itertools.product(*ranges)
        if float(goodput @ np.array(counts)) >= need - 1e-9
    )
    assert cheapest_cover(prices, goodput, need) == best or math.isclose(
        cheapest_cover(prices, goodput, need), best, rel_tol=1e-12
    )


def test_whole_instances_cost_more_than_fractions() -> None:
    # 3000 tok/s from 2930 tok/s instances at $0.5/h: two are needed, not 1.02.
    assert cheapest_cover(np.array([0.5]), np.array([2930.0]), 3000.0) == 1.0
    # A bigger type that fits the need in one beats two small ones.
    assert cheapest_cover(np.array([0.5, 0.9]), np.array([2930.0, 6000.0]), 3000.0) == 0.9
    assert cheapest_cover(np.array([np.inf]), np.array([1000.0]), 10.0) == math.inf
