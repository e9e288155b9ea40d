"""Decisions as data: a :class:`Command` says what to launch and retire, why, and the SLO to
keep; one executor (:meth:`scheduler.actuator.executor.Actuator.execute`) runs every command.

Apply, rebalance and interruption handling each build one (Karpenter's command pattern), so
the launch-then-terminate flow (journal, launch, mark the pool on a capacity error and replan,
wait until ready, guarded terminate, mark applied) is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.actuator.types import Action, Pool


@dataclass(frozen=True)
class Command:
    """What to do to one service's fleet.

    ``plan_id`` is the plan the fleet moves to (marked applied when the command runs, as is
    each plan a capacity error makes on the way). Every journalled reason starts with
    ``reason``.
    """

    plan_id: int
    reason: str
    launches: tuple[Action, ...] = ()
    terminations: tuple[Action, ...] = ()
    #: Retire the surplus against the plan the fleet follows once the launches are ready (the
    #: fleet must match the plan, also after a capacity replan), in place of ``terminations``;
    #: nothing is retired while that plan still lacks a replica.
    match_plan: bool = False
    #: Retire a replica only while the READY fleet serves this much without it (None: no guard).
    slo_tokens_per_second: float | None = None
    #: Pools every capacity replan leaves out (the pool of an interrupted replica).
    exclude_pools: frozenset[Pool] = frozenset()
    #: Replicas that no longer count as running (an interrupted one).
    leaving: frozenset[int] = frozenset()
    #: Wait for the launched replicas to be ready (and then retire); False returns after the
    #: launch requests are accepted.
    wait: bool = True

    @property
    def actions(self) -> list[Action]:
        return [*self.launches, *self.terminations]

    def journal_reason(self, action: Action) -> str:
        return f"{self.reason}: {action.reason}" if self.reason else action.reason
