"""The policies a backtest compares: each turns the market as known at a moment, and the fleet
it runs, into a target fleet (instances per pool), or ``None`` to keep what runs.

- ``planner``: ours, through :func:`scheduler.planner.plan_from_data` with its hedge and its
  switching cost against the running fleet; replans every ``planner_interval_s`` and, like the
  cron rebalancer, moves a whole fleet only when the saving clears both thresholds
  (``jobs.rebalance_min_saving_pct`` and ``..._usd_per_hour``; the dwell time and the cap on
  actions per run are not modelled); replans and acts at once on an interruption or when the
  fleet falls short of its plan (``planner-nohedge``: the same without the hedge). After an
  interruption it launches what the new plan lacks and retires nothing, as the service's
  interruption handler does; a fleet left above its plan is replanned at the next tick, as the
  service's rebalancer acts at its next run.
- ``on-demand``: the cheapest all-on-demand fleet of one instance type, replanned each tick.
- ``cheapest-zone``: what a catalog optimiser does: the single spot pool whose fleet carrying
  the SLO costs least now; it stays there, and fails over to the next cheapest pool when
  interrupted (SkyPilot's managed spot behaviour).
- ``spot-hedge``: SkyServe's SpotHedge as published: the instance type cheapest per tok/s when
  the service starts, the replicas the SLO needs plus one spare spread over that type's
  cheapest active zones of its region, and on-demand replicas covering whatever spot
  replicas are not ready (dynamic fallback), retired once spot is ready again.
- ``price-capacity``: EC2 Fleet's price-capacity-optimized: among pools whose placement score
  for the count is the best, the cheapest; kept until interrupted.

An interrupted pool, or one where a launch failed for want of capacity, is avoided by every
policy for ``avoid_after_interruption_s`` (as the actuator marks a pool after a capacity
error); after a failed launch the policy decides again at once. Every policy is handed what it
has observed so far (:class:`Observation`: interruptions and launch failures per pool, with
times). Policies are objects because some remember a
choice (the zone they stay in); a fresh one is made for every run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from oracle.goodput import GoodputFact
from oracle.risk import Evidence, Tally
from oracle.risk import Observation as RiskObservation
from oracle.stats import OnDemandOffer
from scheduler.backtest.market import MarketHistory, MarketView
from scheduler.config import PlannerConfig
from scheduler.planner import (
    InfeasiblePlanError,
    Plan,
    RunningInstance,
    cost_bound_usd_per_hour,
    plan_from_data,
)
from scheduler.planning.candidates import (
    Candidate,
    CandidateSet,
    PlanningData,
    build_candidates,
)
from scheduler.planning.load import planning_history_days
from scheduler.planning.model import PoolKey
from scheduler.planning.rebalance_rule import RebalanceRule, decide_rebalance

Reason = Literal["tick", "interruption", "launch-failure"]
Target = dict[PoolKey, int]


@dataclass(frozen=True)
class PolicyContext:
    """What every policy knows besides the market: the SLO and the goodput table."""

    history: MarketHistory
    slo_tokens_per_second: float
    model: str
    goodput: Mapping[str, GoodputFact]
    planner_config: PlannerConfig
    planner_interval_s: float
    #: The cron rebalancer's rule (a whole fleet moves only when both thresholds are cleared;
    #: younger replicas stay; at most so many actions a run).
    min_saving_pct: float = 0.0
    min_saving_usd_per_hour: float = 0.0
    min_dwell_s: float = 0.0
    max_actions: int = 1_000_000

    def tokens_per_second(self, instance_type: str) -> float:
        return self.goodput[instance_type].goodput_tokens_per_second

    def count_for(self, instance_type: str) -> int:
        """Instances of the type that carry the SLO."""
        return max(
            1, math.ceil(self.slo_tokens_per_second / self.tokens_per_second(instance_type) - 1e-9)
        )


ObservationKind = Literal["interruption", "launch-failure", "launch", "held"]


@dataclass(frozen=True)
class Observation:
    """What a policy saw happen in a pool, as the actuator records it: ``count`` interruption
    notices of its own instances, launches that failed for want of capacity, launches that
    succeeded, or instances it ended (``held``); ``at_risk_s`` is the instance time an
    interruption or an ending accounts for (the hazard's exposure)."""

    at_s: float
    pool: PoolKey
    kind: ObservationKind
    count: int = 1
    at_risk_s: float = 0.0


@dataclass(frozen=True)
class FleetState:
    """The fleet a policy runs, as it knows it at the moment of deciding."""

    counts: Mapping[PoolKey, int]
    ready_counts: Mapping[PoolKey, int]
    #: Spot pools interrupted or out of capacity recently, to stay away from.
    avoid: frozenset[PoolKey]
    #: Everything this policy has observed so far, oldest first (no look-ahead).
    observations: Sequence[Observation] = ()
    #: Per pool, when each active instance was launched, newest first.
    launch_times: Mapping[PoolKey, Sequence[float]] = field(default_factory=dict)


class Policy:
    name: str = ""
    #: Whether the policy runs through the service's executor, whose last resort after failed
    #: launches is the on-demand cover (:func:`scheduler.planning.fallback.cover_on_demand`).
    falls_back_on_demand: bool = False

    def __init__(self, context: PolicyContext) -> None:
        self.context = context
        #: Seconds spent deciding (planning), for the benchmark.
        self.decide_s = 0.0

    def decide(self, view: MarketView, fleet: FleetState, reason: Reason) -> Target | None:
        started = time.perf_counter()
        try:
            return self._decide(view, fleet, reason)
        finally:
            self.decide_s += time.perf_counter() - started

    def _decide(self, view: MarketView, fleet: FleetState, reason: Reason) -> Target | None:
        raise NotImplementedError


class PlannerPolicy(Policy):
    falls_back_on_demand = True

    def __init__(self, context: PolicyContext, *, hedge: bool) -> None:
        super().__init__(context)
        self.name = "planner" if hedge else "planner-nohedge"
        config = context.planner_config
        self.config = config if hedge else config.model_copy(update={"hedge": "none"})
        #: The pools are priced alike with and without the hedge: both variants share them.
        self._candidates_key = ("candidates", config.model_dump_json(exclude={"hedge"}))
        #: As the planner reads the oracle (7 days for the default estimator).
        self._history_days = planning_history_days(config)
        self.last_plan_s: float | None = None
        self.last_target: Target = {}
        #: The hedge depth of the last plan, kept by the replans after a failed launch (see
        #: :meth:`_plan_config`).
        self.last_depth: str | None = None
        self._fixed: dict[str, PlannerConfig] = {}
        #: What started the decisions of this moment (a failed launch's replan continues it).
        self._origin: Reason = "tick"
        #: The policy's observations as risk evidence, each added once to running sums.
        self._tally = Tally()
        self._tallied = 0

    def _decide(self, view: MarketView, fleet: FleetState, reason: Reason) -> Target | None:
        due = self.last_plan_s is None or (
            view.as_of_s - self.last_plan_s >= self.context.planner_interval_s
        )
        if reason != "launch-failure":
            self._origin = reason
        # Short of the plan, or above it (the survivors an interruption's replacement kept):
        # either way the next tick replans, as the service's rebalancer acts at its next run.
        off_plan = _nonzero(fleet.counts) != _nonzero(self.last_target)
        if not (due or off_plan or reason != "tick"):
            return None
        types = set(self.context.goodput)
        data = PlanningData(
            as_of=view.as_of,
            model=self.context.model,
            pool_stats=view.pool_stats_of(types, history_days=self._history_days),
            on_demand=[o for o in view.on_demand_offers if o.instance_type in types],
            goodput=self.context.goodput,
            instance_specs=self.context.history.instance_specs,
            evidence=self._risk_evidence(view.as_of_s, fleet),
        )
        running = [RunningInstance(pool, count) for pool, count in sorted(fleet.counts.items())]
        # Priced once per view and per evidence (each variant learns from what it saw), then
        # narrowed to each avoid set: in a world that fails, that set changes most decisions.
        seen = (self.name, len(fleet.observations))
        # Pools priced at this moment, shared by every build from this view (most pools have
        # the same evidence, often none, in each).
        priced: dict[tuple[int, Evidence | None], Candidate | str] = view.memo(
            (*self._candidates_key, "priced"), dict
        )
        every = view.memo(
            (*self._candidates_key, *seen),
            lambda: build_candidates(data, self.config, priced=priced),
        )
        candidates = view.memo(
            (*self._candidates_key, *seen, fleet.avoid), lambda: _without(every, fleet.avoid)
        )
        if reason == "tick" and not off_plan and fleet.counts:
            current = self._current_cost_usd_per_hour(candidates, fleet)
            if current is not None and self._cannot_pay(data, candidates, current):
                self.last_plan_s = view.as_of_s
                return None
        try:
            plan = plan_from_data(
                data,
                config=self._plan_config(reason),
                slo_tokens_per_second=self.context.slo_tokens_per_second,
                running=running,
                exclude_pools=fleet.avoid,
                with_baselines=False,
                candidate_set=candidates,
            )
        except InfeasiblePlanError:
            return None
        self.last_plan_s = view.as_of_s
        self.last_depth = plan.hedge
        target = {a.pool: a.count for a in plan.allocations if a.count > 0}
        if reason == "tick" and not off_plan and target != dict(fleet.counts):
            current = self._current_cost_usd_per_hour(candidates, fleet)
            if current is not None:
                moved = self._rebalance(view.as_of_s, fleet, target, current, plan)
                if moved is None:
                    return None
                target = moved
        self.last_target = target
        if self._origin == "interruption":
            # As the service's interruption handler: launch what the plan lacks, retire nothing.
            return {
                pool: max(target.get(pool, 0), fleet.counts.get(pool, 0))
                for pool in {*target, *fleet.counts}
            }
        return dict(target)

    def _plan_config(self, reason: Reason) -> PlannerConfig:
        """The planner's settings for this replan. With ``hedge = "auto"``, a replan after a
        failed launch keeps the depth the last plan chose (moments earlier, on the same risk
        estimates; a failed launch changes the pools, not the risk of the depths), so it
        solves one MILP instead of up to three; the next tick or interruption chooses the
        depth afresh."""
        if reason != "launch-failure" or self.config.hedge != "auto" or self.last_depth is None:
            return self.config
        depth = self.last_depth
        if depth not in self._fixed:
            self._fixed[depth] = self.config.model_copy(update={"hedge": depth})
        return self._fixed[depth]

    def _rebalance(
        self,
        now_s: float,
        fleet: FleetState,
        target: Target,
        current_usd_per_hour: float,
        plan: Plan,
    ) -> Target | None:
        """The cron rebalancer's decision on moving a fleet that still carries the SLO to
        ``target``: :func:`scheduler.planning.rebalance_rule.decide_rebalance`, the one rule
        the service's rebalancer applies (thresholds, dwell time, cap on actions), on the
        instance moves; ``None`` to keep the fleet, else the fleet after the allowed moves."""
        context = self.context
        launches = [
            pool
            for pool, count in sorted(target.items())
            for _ in range(count - fleet.counts.get(pool, 0))
        ]
        terminations: list[tuple[PoolKey, float | None]] = []
        for pool, count in sorted(fleet.counts.items()):
            extra = count - target.get(pool, 0)
            ages = [now_s - t for t in fleet.launch_times.get(pool, ())]
            terminations += [(pool, ages[i] if i < len(ages) else None) for i in range(extra)]
        decision = decide_rebalance(
            RebalanceRule(
                min_saving_usd_per_hour=context.min_saving_usd_per_hour,
                min_saving_pct=context.min_saving_pct,
                min_dwell_s=context.min_dwell_s,
                max_actions=context.max_actions,
            ),
            launches=launches,
            terminations=terminations,
            current_usd_per_hour=current_usd_per_hour,
            planned_usd_per_hour=plan.cost_usd_per_hour,
        )
        if not decision.act:
            return None
        moved = dict(fleet.counts)
        for pool in decision.launches:
            moved[pool] = moved.get(pool, 0) + 1
        for pool in decision.terminations:
            moved[pool] -= 1
        return {pool: count for pool, count in moved.items() if count > 0}

    def _risk_evidence(
        self, now_s: float, fleet: FleetState
    ) -> dict[tuple[str, str, str, str], Evidence]:
        """What this policy has seen, summed per pool as :mod:`oracle.risk` sums evidence (no
        look-ahead): its observations so far, each added once to running sums, and the time
        its running instances have been held (stamped now: the exposure that a quiet pool
        earns)."""
        for seen in fleet.observations[self._tallied :]:
            self._tally.add(_risk_row(seen))
        self._tallied = len(fleet.observations)
        if not fleet.launch_times:
            return self._tally.evidence()
        tally = self._tally.copy()
        now = _datetime(now_s)
        for pool, times in sorted(fleet.launch_times.items()):
            if pool.market == "spot":
                tally.add(
                    RiskObservation(
                        pool.region, pool.zone, pool.instance_type, pool.market, "held", now,
                        count=len(times), at_risk_s=sum(now_s - t for t in times),
                        source="backtest",
                    )
                )  # fmt: skip
        return tally.evidence()

    def _cannot_pay(
        self, data: PlanningData, candidates: CandidateSet, current_usd_per_hour: float
    ) -> bool:
        """Whether no plan can save enough to move to: not even a lower bound on every plan's
        cost does (the cost-per-tok/s bound when it is enough, else the LP relaxation's; see
        :func:`scheduler.solver.cost_lower_bound`). The fleet is then kept without solving the
        MILP, the decision the plan would lead to (at the default thresholds, all 239 hourly
        replans of a settled fleet in 10 days of the sample market at 5,000 tok/s)."""
        context = self.context
        # Any bound above this leaves too little saving by one threshold or the other.
        enough = min(
            current_usd_per_hour - context.min_saving_usd_per_hour,
            current_usd_per_hour * (1 - context.min_saving_pct / 100),
        )
        bound = cost_bound_usd_per_hour(
            data,
            candidates,
            config=self.config,
            slo_tokens_per_second=context.slo_tokens_per_second,
            enough=np.nextafter(enough, np.inf),
        )
        return bound is not None and not self._worth_moving(current_usd_per_hour, bound)

    def _worth_moving(self, current_usd_per_hour: float, planned_usd_per_hour: float) -> bool:
        saving = current_usd_per_hour - planned_usd_per_hour
        pct = 100.0 * saving / current_usd_per_hour if current_usd_per_hour > 0 else 0.0
        return saving >= self.context.min_saving_usd_per_hour and pct >= self.context.min_saving_pct

    def _current_cost_usd_per_hour(
        self, candidate_set: CandidateSet, fleet: FleetState
    ) -> float | None:
        """The running fleet's expected cost priced as the planner prices pools, or ``None``
        when it no longer carries the SLO (with the hedge) or runs in a pool the planner would
        not use (then the plan is applied whatever it saves)."""
        candidates = {c.pool: c for c in candidate_set.candidates}
        cost = total = 0.0
        groups: dict[str, float] = {}
        for pool, count in fleet.counts.items():
            candidate = candidates.get(pool)
            if candidate is None:
                return None
            cost += count * candidate.expected_cost_usd_per_hour
            total += count * candidate.tokens_per_second
            if pool.market == "spot":
                group = pool.region if self.config.hedge == "region" else pool.zone
                groups[group] = groups.get(group, 0.0) + count * candidate.tokens_per_second
        slo = self.context.slo_tokens_per_second
        if total < slo * (1 + self.config.headroom_fraction) * (1 - 1e-9):
            return None
        if self.config.hedge != "none" and total - max(groups.values(), default=0.0) < slo * (
            1 - 1e-9
        ):
            return None
        return cost


class OnDemandPolicy(Policy):
    name = "on-demand"

    def __init__(self, context: PolicyContext) -> None:
        super().__init__(context)
        self._offers: list[OnDemandOffer] | None = None
        self._target: Target | None = None

    def _decide(self, view: MarketView, fleet: FleetState, reason: Reason) -> Target | None:
        offers = view.on_demand_offers
        if offers is not self._offers:  # the list is shared until a price takes effect
            self._offers = offers
            best = _cheapest_on_demand(offers, self.context)
            self._target = None
            if best is not None:
                offer, count = best
                self._target = {PoolKey(offer.region, "", offer.instance_type, "on-demand"): count}
        return None if self._target is None else dict(self._target)


class CheapestZonePolicy(Policy):
    name = "cheapest-zone"

    def __init__(self, context: PolicyContext) -> None:
        super().__init__(context)
        self.pool: PoolKey | None = None

    def _decide(self, view: MarketView, fleet: FleetState, reason: Reason) -> Target | None:
        if self.pool is None or self.pool in fleet.avoid:
            choice = _cheapest_spot_pool(view, self.context, fleet.avoid, self._eligible(view))
            if choice is None:
                return None
            self.pool = choice
        return {self.pool: self.context.count_for(self.pool.instance_type)}

    def _eligible(self, view: MarketView) -> Callable[[int], bool] | None:
        return None


class PriceCapacityPolicy(CheapestZonePolicy):
    name = "price-capacity"

    def _eligible(self, view: MarketView) -> Callable[[int], bool] | None:
        history, context = view.history, self.context
        scores: dict[int, int] = {}
        for pool in history.pools:
            if pool.instance_type in context.goodput:
                scores[pool.index] = _score_for(
                    view.placement_scores(pool.index), context.count_for(pool.instance_type)
                )
        prices = view.spot_prices_usd_per_hour
        priced = [index for index in scores if not np.isnan(prices[index])]
        if not priced:
            return None
        best = max(scores[index] for index in priced)
        return lambda index: scores.get(index, -1) == best


class SpotHedgePolicy(Policy):
    name = "spot-hedge"
    #: Spare replicas above what the SLO needs (SkyServe's num_overprovision default is 1).
    spare = 1

    def __init__(self, context: PolicyContext) -> None:
        super().__init__(context)
        self.region: str | None = None
        self.instance_type: str | None = None

    def _decide(self, view: MarketView, fleet: FleetState, reason: Reason) -> Target | None:
        if self.instance_type is None:
            first = _cheapest_spot_pool(view, self.context, frozenset(), None)
            if first is None:
                return None
            self.region, self.instance_type = first.region, first.instance_type
        assert self.region is not None
        needed = self.context.count_for(self.instance_type)
        zones = self._zones(view, fleet.avoid)
        target: Target = {
            pool: count
            for pool, count in fleet.counts.items()
            if pool.market == "spot" and pool not in fleet.avoid
        }
        while zones and sum(target.values()) < needed + self.spare:
            # The cheapest zone among those holding the fewest replicas.
            least = min(target.get(zone, 0) for zone in zones)
            zone = next(zone for zone in zones if target.get(zone, 0) == least)
            target[zone] = target.get(zone, 0) + 1
        ready_tps = sum(
            count * self.context.tokens_per_second(pool.instance_type)
            for pool, count in fleet.ready_counts.items()
            if pool.market == "spot"
        )
        short_tps = self.context.slo_tokens_per_second - ready_tps
        if short_tps > 1e-9:
            fallback = self._fallback(view, short_tps)
            if fallback is not None:
                target[fallback[0]] = fallback[1]
        return target

    def _fallback(self, view: MarketView, short_tps: float) -> tuple[PoolKey, int] | None:
        """On-demand replicas covering ``short_tps``: of the service's type where the region
        offers it on demand, else of the region's cheapest type that does."""
        offers = [
            o
            for o in view.on_demand_offers
            if o.region == self.region and o.instance_type in self.context.goodput
        ]
        same = [o for o in offers if o.instance_type == self.instance_type]
        best: tuple[float, str, int] | None = None
        for offer in same or offers:
            count = math.ceil(
                short_tps / self.context.tokens_per_second(offer.instance_type) - 1e-9
            )
            rank = (offer.price_usd_per_hour * count, offer.instance_type, count)
            if best is None or rank < best:
                best = rank
        if best is None:
            return None
        assert self.region is not None
        return PoolKey(self.region, "", best[1], "on-demand"), best[2]

    def _zones(self, view: MarketView, avoid: frozenset[PoolKey]) -> list[PoolKey]:
        """Spot pools of the chosen type in the chosen region, cheapest first; the avoided
        ones only when nothing else is left."""
        prices = view.spot_prices_usd_per_hour
        assert self.region is not None and self.instance_type is not None
        pools = [
            (float(prices[p.index]), p.key)
            for p in view.history.pools_by_type.get((self.region, self.instance_type), [])
            if not np.isnan(prices[p.index])
        ]
        pools.sort()
        active = [key for _, key in pools if key not in avoid]
        return active or [key for _, key in pools]


def make_policies(names: Sequence[str], context: PolicyContext) -> list[Policy]:
    """Fresh policies by name (unknown names are refused by the caller's validation)."""
    makers: dict[str, Callable[[], Policy]] = {
        "planner": lambda: PlannerPolicy(context, hedge=True),
        "planner-nohedge": lambda: PlannerPolicy(context, hedge=False),
        "on-demand": lambda: OnDemandPolicy(context),
        "cheapest-zone": lambda: CheapestZonePolicy(context),
        "spot-hedge": lambda: SpotHedgePolicy(context),
        "price-capacity": lambda: PriceCapacityPolicy(context),
    }
    return [makers[name]() for name in names]


# --- helpers ------------------------------------------------------------------------------


_RISK_KIND = {
    "interruption": "interruption",
    "launch-failure": "capacity-error",
    "launch": "launch",
    "held": "held",
}


def _nonzero(counts: Mapping[PoolKey, int]) -> dict[PoolKey, int]:
    return {pool: count for pool, count in counts.items() if count}


def _risk_row(seen: Observation) -> RiskObservation:
    pool = seen.pool
    return RiskObservation(
        pool.region, pool.zone, pool.instance_type, pool.market, _RISK_KIND[seen.kind],
        _datetime(seen.at_s), count=seen.count, at_risk_s=seen.at_risk_s, source="backtest",
    )  # fmt: skip


def _datetime(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def _without(candidates: CandidateSet, avoid: frozenset[PoolKey]) -> CandidateSet:
    """``candidates`` less the pools in ``avoid``, as ``build_candidates(exclude_pools=avoid)``
    gives them (a left-out pool counts as excluded by the caller)."""
    if not avoid:
        return candidates
    kept = CandidateSet([c for c in candidates.candidates if c.pool not in avoid])
    kept.excluded = dict(candidates.excluded)
    dropped = len(candidates.candidates) - len(kept.candidates)
    if dropped:
        kept.excluded["excluded by the caller"] = (
            kept.excluded.get("excluded by the caller", 0) + dropped
        )
    return kept


def _cheapest_on_demand(
    offers: Sequence[OnDemandOffer], context: PolicyContext
) -> tuple[OnDemandOffer, int] | None:
    best: tuple[float, tuple[str, str], OnDemandOffer, int] | None = None
    for offer in offers:
        if offer.instance_type not in context.goodput:
            continue
        count = context.count_for(offer.instance_type)
        rank = (offer.price_usd_per_hour * count, (offer.region, offer.instance_type))
        if best is None or rank < best[:2]:
            best = (rank[0], rank[1], offer, count)
    return None if best is None else (best[2], best[3])


def _cheapest_spot_pool(
    view: MarketView,
    context: PolicyContext,
    avoid: frozenset[PoolKey],
    eligible: Callable[[int], bool] | None,
) -> PoolKey | None:
    """The spot pool whose fleet carrying the SLO costs least at the current price."""
    prices = view.spot_prices_usd_per_hour
    best: tuple[float, PoolKey] | None = None
    for pool in view.history.pools:
        if pool.instance_type not in context.goodput or np.isnan(prices[pool.index]):
            continue
        if pool.key in avoid or (eligible is not None and not eligible(pool.index)):
            continue
        rank = (float(prices[pool.index]) * context.count_for(pool.instance_type), pool.key)
        if best is None or rank < best:
            best = rank
    return None if best is None else best[1]


def _score_for(scores: Mapping[int, int], count: int) -> int:
    """The placement score for ``count`` instances: the answer for the smallest target capacity
    at or above it, else the largest asked; 0 when the pool has none."""
    if not scores:
        return 0
    above = [capacity for capacity in scores if capacity >= count]
    return scores[min(above)] if above else scores[max(scores)]
