"""The one rebalance rule, on plain moves (as the backtest calls it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduler.planning.rebalance_rule import RebalanceRule, decide_rebalance

RULE = RebalanceRule(
    min_saving_usd_per_hour=0.5, min_saving_pct=10.0, min_dwell_s=3600.0, max_actions=4
)


@given(
    launches=st.integers(0, 6),
    ages_s=st.lists(st.one_of(st.none(), st.floats(0, 7200)), max_size=6),
    current=st.floats(0, 50),
    planned=st.floats(0, 50),
    slo_changed=st.booleans(),
)
def test_rule_keeps_thresholds_dwell_and_cap(
    launches: int, ages_s: list[float | None], current: float, planned: float, slo_changed: bool
) -> None:
    terminations = [(f"t{i}", age) for i, age in enumerate(ages_s)]
    decision = decide_rebalance(
        RULE,
        launches=[f"l{i}" for i in range(launches)],
        terminations=terminations,
        current_usd_per_hour=current,
        planned_usd_per_hour=planned,
        slo_changed=slo_changed,
    )
    assert len(decision.launches) + len(decision.terminations) <= RULE.max_actions
    young = {name for name, age in terminations if age is not None and age < RULE.min_dwell_s}
    assert not young & set(decision.terminations)
    worth = decision.saving_usd_per_hour >= 0.5 and decision.saving_pct >= 10.0
    if decision.act:
        assert slo_changed or worth
    elif (slo_changed or worth) and (launches or len(young) < len(terminations)):
        raise AssertionError(f"should act: {decision.reason}")


def test_launches_come_first_under_the_cap() -> None:
    decision = decide_rebalance(
        RULE,
        launches=["a", "b", "c"],
        terminations=[("x", None), ("y", 7200.0), ("z", 10.0)],
        current_usd_per_hour=10.0,
        planned_usd_per_hour=5.0,
    )
    assert decision.launches == ["a", "b", "c"]
    assert decision.terminations == ["x"]
    assert decision.held == 1
    assert "1 held by the dwell time" in decision.reason
