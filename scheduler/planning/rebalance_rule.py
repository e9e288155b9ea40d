"""The one rebalance decision: act on a new plan only when it is worth the churn.

Pure, and generic over what a move is: the service's rebalancer passes actuator actions, the
backtest's planner policy passes its own moves; both get the same answer for the same inputs.

Given the moves from the running fleet to the best plan (launches, and terminations with the
age of the replica each would end), the running fleet's expected cost ``C`` and the plan's
``P`` (both $/h):

1. no moves: nothing to do;
2. unless the SLO itself changed, act only when the saving ``C - P`` is at least
   ``min_saving_usd_per_hour`` and ``100 (C - P) / C`` at least ``min_saving_pct``;
3. a replica younger than ``min_dwell_s`` is not terminated (unknown age: movable);
4. at most ``max_actions`` moves per run: launches first (make before break), then the
   terminations that fit under the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Move = TypeVar("Move")


@dataclass(frozen=True)
class RebalanceRule:
    """The thresholds (config ``jobs.rebalance_*``)."""

    min_saving_usd_per_hour: float
    min_saving_pct: float
    min_dwell_s: float
    max_actions: int


@dataclass
class RuleDecision(Generic[Move]):
    act: bool
    reason: str
    current_usd_per_hour: float
    planned_usd_per_hour: float
    launches: list[Move] = field(default_factory=list)
    terminations: list[Move] = field(default_factory=list)
    #: Terminations held back by the dwell time.
    held: int = 0

    @property
    def saving_usd_per_hour(self) -> float:
        return self.current_usd_per_hour - self.planned_usd_per_hour

    @property
    def saving_pct(self) -> float:
        if self.current_usd_per_hour <= 0:
            return 0.0
        return 100.0 * self.saving_usd_per_hour / self.current_usd_per_hour


def decide_rebalance(
    rule: RebalanceRule,
    *,
    launches: Sequence[Move],
    terminations: Sequence[tuple[Move, float | None]],
    current_usd_per_hour: float,
    planned_usd_per_hour: float,
    slo_changed: bool = False,
) -> RuleDecision[Move]:
    """Which of the moves to make now. ``terminations`` pairs each termination with the age in
    seconds of the replica it ends (``None``: unknown, movable)."""
    decision: RuleDecision[Move] = RuleDecision(
        False, "", current_usd_per_hour, planned_usd_per_hour
    )
    if not launches and not terminations:
        decision.reason = "the fleet already matches the best plan"
        return decision
    saving, pct = decision.saving_usd_per_hour, decision.saving_pct
    if not slo_changed and (saving < rule.min_saving_usd_per_hour or pct < rule.min_saving_pct):
        decision.reason = (
            f"saving {saving:.3f} $/h ({pct:.1f}%) is under the thresholds "
            f"({rule.min_saving_usd_per_hour} $/h and {rule.min_saving_pct}%)"
        )
        return decision
    movable = [move for move, age_s in terminations if age_s is None or age_s >= rule.min_dwell_s]
    decision.launches = list(launches[: rule.max_actions])
    decision.terminations = movable[: max(0, rule.max_actions - len(decision.launches))]
    decision.act = bool(decision.launches or decision.terminations)
    decision.held = len(terminations) - len(movable)
    decision.reason = (
        ("the SLO changed" if slo_changed else f"saving {saving:.3f} $/h ({pct:.1f}%)")
        + f"; {len(decision.launches)} launches, {len(decision.terminations)} terminations"
        + (f", {decision.held} held by the dwell time" if decision.held else "")
    )
    return decision
