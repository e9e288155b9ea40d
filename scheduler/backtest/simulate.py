"""The tick loop: every policy, in lockstep, over the same views and the same interruptions.

Events, in time order: interruption notices (sampled once for all policies) and ticks (every
``tick_s`` from ``start``). At a notice in a pool where a policy runs instances, the policy
loses them two minutes later and decides at once (as the actuator's interruption handler
does). At a tick every policy decides on the view as of that tick. A view holds only facts
observed at or before its moment, so no decision can see the future.

Afterwards, per policy: the cost (each instance billed per second at the price in force from
launch to end), the capacity over time (ready instances x goodput), SLO attainment (the share
of time capacity is at or above the SLO), the deficit (output tokens short of the SLO rate),
and the cost per million output tokens served (up to the SLO rate).

The ``hindsight`` bound (:mod:`scheduler.backtest.hindsight`): what the cheapest fleet carrying
the SLO would cost knowing every price, with no interruptions and no start-up; no policy that
keeps the SLO carried can cost less.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from oracle.capacity import BACKOFF_WINDOW_S, backoff_ttl_s
from oracle.goodput import GoodputFact
from scheduler.backtest.bounds import clairvoyant_cost, hedged_cost
from scheduler.backtest.draw import draw_world
from scheduler.backtest.fleet import Fleet, Instance
from scheduler.backtest.hindsight import hindsight_cost
from scheduler.backtest.interruptions import InterruptionModel
from scheduler.backtest.market import MarketHistory, MarketView
from scheduler.backtest.policies import (
    FleetState,
    Observation,
    Policy,
    PolicyContext,
    make_policies,
)
from scheduler.backtest.spend import PoolSpend, account
from scheduler.backtest.world import World, WorldOptions
from scheduler.config import PlannerConfig
from scheduler.planning.fallback import MAX_REPLANS, cover_on_demand, cover_type
from scheduler.planning.model import PoolKey

_NOTICE, _TICK = 0, 1
#: Decisions at one moment: the first and a replan after each failed launch, as the service's
#: executor makes them (each failure marks the pool, so the policy moves on).
_RETRIES = MAX_REPLANS + 1


@dataclass(frozen=True)
class BacktestOptions:
    slo_tokens_per_second: float
    start: datetime
    end: datetime
    tick_s: float
    policies: tuple[str, ...]
    model: str
    seed: int = 0
    startup_s: float = 600.0
    drain_s: float = 30.0
    planner_interval_s: float = 3600.0
    avoid_after_interruption_s: float = 3600.0
    #: The cron rebalancer's thresholds the planner policies honour (jobs.rebalance_min_*).
    rebalance_min_saving_pct: float = 5.0
    rebalance_min_saving_usd_per_hour: float = 0.02
    rebalance_min_dwell_s: float = 0.0
    rebalance_max_actions: int = 1_000_000
    interruptions: InterruptionModel = field(default_factory=InterruptionModel)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    world: WorldOptions = field(default_factory=lambda: WorldOptions(name="advisor"))
    #: Processes that replay the policies side by side (see :func:`run_backtest`).
    processes: int = 1
    #: ``service.on_demand_fallback``: when the replans after failed launches are spent, the
    #: planner policies cover what is missing on demand, as the service's executor does.
    on_demand_fallback: bool = True


@dataclass
class PolicyResult:
    name: str
    cost_usd: float
    served_tokens: float
    slo_attainment: float
    deficit_tokens: float
    interruptions: int
    launches: int
    decide_s: float
    launch_failures: int = 0
    #: What the policy observed (interruption notices and failed launches), in order.
    observations: list[Observation] = field(default_factory=list)
    #: Lengths (s) of the spells with capacity below the SLO.
    deficit_spells_s: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    instances: list[Instance] = field(default_factory=list)
    #: The bill by market and phase (:data:`scheduler.backtest.spend.SPEND_KEYS`; sums to
    #: ``cost_usd``) and by pool, the costliest first (:mod:`scheduler.backtest.spend`).
    spend_usd: dict[str, float] = field(default_factory=dict)
    pools: list[PoolSpend] = field(default_factory=list)
    #: Decisions in order: (moment in epoch seconds, target as sorted (pool, count) pairs).
    decisions: list[tuple[float, tuple[tuple[PoolKey, int], ...]]] = field(default_factory=list)
    #: Per tick: capacity (tok/s), cumulative cost (USD), spot and on-demand instances billed.
    capacity_tokens_per_second: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    cumulative_cost_usd: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    spot_instances: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=int))
    on_demand_instances: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def cost_usd_per_million_tokens(self) -> float | None:
        return self.cost_usd / self.served_tokens * 1e6 if self.served_tokens > 0 else None


@dataclass
class BacktestResult:
    options: BacktestOptions
    policies: dict[str, PolicyResult]
    hindsight_cost_usd: float
    tick_times_s: NDArray[np.float64]
    world: World
    #: Cumulative hindsight cost at each tick.
    hindsight_cumulative_usd: NDArray[np.float64]
    interruption_events: int
    timing_s: dict[str, float]
    #: The other bounds: ``hindsight-hedged``, ``hindsight-region`` and ``clairvoyant``
    #: (USD).
    bounds_usd: dict[str, float] = field(default_factory=dict)
    #: The replays of the further seeds (``--seeds N``), each in its own world.
    other_seeds: list[BacktestResult] = field(default_factory=list)

    @property
    def all_seeds(self) -> list[BacktestResult]:
        return [self, *self.other_seeds]

    @property
    def slo_tokens(self) -> float:
        """Output tokens the SLO rate asks for over the window."""
        span = self.options.end.timestamp() - self.options.start.timestamp()
        return self.options.slo_tokens_per_second * span


def run_backtest(
    history: MarketHistory,
    *,
    goodput: Mapping[str, GoodputFact],
    options: BacktestOptions,
    on_progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Replay ``options.start`` to ``options.end`` for every policy; ``on_progress(done,
    total)`` is called every few hundred ticks.

    With ``options.processes`` above 1 (and where the OS can fork), the policies are split
    into that many groups, the planner's variants first, each group replayed in a process of
    its own (forked: the market is shared, not copied) and the results joined. A policy's
    replay depends only on the world, which every process draws alike from the seed, so the
    figures are those of one process; only the shared per-moment work (the market statistics
    both planner variants read) is done once per process. The bounds are computed in the last
    group's process, beside the quick policies, so that the planner's replay, the longest,
    is all its process does."""
    groups = _groups(options.policies, options.processes)
    if len(groups) > 1:
        return _run_split(history, goodput, options, groups, on_progress)
    return _run(history, goodput, options, on_progress, with_bounds=True)


def _groups(policies: Sequence[str], processes: int) -> list[tuple[str, ...]]:
    """The policies in at most ``processes`` groups: each planner variant (the slow ones)
    leads a group of its own, and the others join the last group."""
    if processes <= 1 or len(policies) <= 1 or "fork" not in mp.get_all_start_methods():
        return [tuple(policies)]
    heavy = [name for name in policies if name.startswith("planner")]
    light = [name for name in policies if not name.startswith("planner")]
    groups = [[name] for name in heavy[: processes - 1]]
    rest = heavy[processes - 1 :] + light
    if rest:
        groups.append(rest)
    return [tuple(group) for group in groups if group]


#: What the forked replays read (set by the parent just before it forks).
_FORKED: list[tuple[MarketHistory, Mapping[str, GoodputFact]]] = []


def _run_split(
    history: MarketHistory,
    goodput: Mapping[str, GoodputFact],
    options: BacktestOptions,
    groups: list[tuple[str, ...]],
    on_progress: Callable[[int, int], None] | None,
) -> BacktestResult:
    started = time.perf_counter()
    _FORKED[:] = [(history, goodput)]
    try:
        with ProcessPoolExecutor(len(groups) - 1, mp_context=mp.get_context("fork")) as pool:
            last = len(groups) - 1
            others = [
                pool.submit(
                    _run_forked,
                    replace(options, policies=group, processes=1),
                    with_bounds=number == last,
                )
                for number, group in enumerate(groups[1:], start=1)
            ]
            first = _run(
                history,
                goodput,
                replace(options, policies=groups[0], processes=1),
                on_progress,
                with_bounds=False,
            )
            parts = [first, *(future.result() for future in others)]
    finally:
        _FORKED.clear()
    results = {name: part.policies[name] for part in parts for name in part.options.policies}
    bounded = parts[-1]
    first.hindsight_cost_usd = bounded.hindsight_cost_usd
    first.hindsight_cumulative_usd = bounded.hindsight_cumulative_usd
    first.bounds_usd = bounded.bounds_usd
    first.policies = {name: results[name] for name in options.policies}
    first.options = options
    first.timing_s = {
        **{key: sum(part.timing_s.get(key, 0.0) for part in parts) for key in bounded.timing_s},
        "total": time.perf_counter() - started,
    }
    return first


def _run_forked(options: BacktestOptions, *, with_bounds: bool) -> BacktestResult:
    ((history, goodput),) = _FORKED
    return _run(history, goodput, options, None, with_bounds=with_bounds)


def _run(
    history: MarketHistory,
    goodput: Mapping[str, GoodputFact],
    options: BacktestOptions,
    on_progress: Callable[[int, int], None] | None,
    *,
    with_bounds: bool,
) -> BacktestResult:
    started = time.perf_counter()
    start_s, end_s = options.start.timestamp(), options.end.timestamp()
    ticks = np.arange(start_s, end_s, options.tick_s, dtype=np.float64)
    world = draw_world(
        history,
        options=options.world,
        interruptions=options.interruptions,
        seed=options.seed,
        start_s=start_s,
        end_s=end_s,
        instance_types=set(goodput),
    )
    sampled_s = time.perf_counter()
    excluded = frozenset(history.pools[index].key for index in world.excluded)
    context = PolicyContext(
        history=history,
        slo_tokens_per_second=options.slo_tokens_per_second,
        model=options.model,
        goodput=goodput,
        planner_config=options.planner,
        planner_interval_s=options.planner_interval_s,
        min_saving_pct=options.rebalance_min_saving_pct,
        min_saving_usd_per_hour=options.rebalance_min_saving_usd_per_hour,
        min_dwell_s=options.rebalance_min_dwell_s,
        max_actions=options.rebalance_max_actions,
    )
    policies = make_policies(options.policies, context)
    rates = {name: fact.goodput_tokens_per_second for name, fact in goodput.items()}
    runs = [
        _Run(
            policy.name,
            Fleet(options.startup_s, options.drain_s),
            excluded=excluded,
            avoid_s=options.avoid_after_interruption_s,
        )
        for policy in policies
    ]
    events = _events(ticks, world.notices)
    pools = history.pools
    index_of = history.pool_index
    view_s = 0.0
    for done, (moment, kind, pool) in enumerate(events):
        if kind == _NOTICE and not any(run.fleet.runs_in(pools[pool].key) for run in runs):
            continue
        view_started = time.perf_counter()
        view = history.as_of(_datetime(moment))
        view_s += time.perf_counter() - view_started

        def has_capacity(key: PoolKey, at: float = moment) -> bool:
            return key.market != "spot" or (
                key not in excluded and world.has_capacity(index_of[key], at)
            )

        for policy, run in zip(policies, runs, strict=True):
            run.fleet.advance(moment)
            if kind == _NOTICE:
                key = pools[pool].key
                hit = run.fleet.interrupt(key, moment)
                if hit == 0:
                    continue
                held_s = sum(
                    moment - i.launched_s
                    for i in run.fleet.instances
                    if i.pool == key and i.interrupted_s == moment
                )
                run.observe(moment, key, "interruption", count=hit, at_risk_s=held_s)
                reason = "interruption"
            else:
                reason = "tick"
            failed: list[PoolKey] = []
            target = None
            for _attempt in range(_RETRIES):
                state = run.state(moment)
                target = policy.decide(view, state, reason)  # type: ignore[arg-type]
                if target is None:
                    break
                run.decisions.append((moment, tuple(sorted(target.items()))))
                failed = run.fleet.set_target(target, rates, moment, has_capacity)
                run.record_changes(moment)
                if not failed:
                    break
                for key in failed:
                    run.observe(moment, key, "launch-failure")
                reason = "launch-failure"
            if failed and target is not None and options.on_demand_fallback:
                _cover_on_demand(policy, run, target, failed, moment, rates, view)
        if on_progress is not None and (done % 256 == 0 or done == len(events) - 1):
            on_progress(done + 1, len(events))
    simulated_s = time.perf_counter()
    results = {}
    for policy, run in zip(policies, runs, strict=True):
        run.fleet.close(end_s)
        results[policy.name] = _measure(history, run, options, ticks, decide_s=policy.decide_s)
    if not with_bounds:  # a part of a split replay: the last part computes them
        return BacktestResult(
            options=options,
            policies=results,
            hindsight_cost_usd=math.nan,
            tick_times_s=ticks,
            world=world,
            hindsight_cumulative_usd=np.zeros(0),
            interruption_events=world.notice_count,
            timing_s={"planning": sum(policy.decide_s for policy in policies)},
        )
    hindsight, hindsight_curve = hindsight_cost(
        history,
        goodput=rates,
        slo_tokens_per_second=options.slo_tokens_per_second,
        start_s=start_s,
        end_s=end_s,
        ticks=ticks,
    )

    def hedged(group: Literal["zone", "region"]) -> float:
        return hedged_cost(
            history, goodput=rates, slo_tokens_per_second=options.slo_tokens_per_second,
            start_s=start_s, end_s=end_s, ticks=ticks, excluded=world.excluded, group=group,
        )  # fmt: skip

    # A fleet that survives any region's loss survives any AZ's: each bound is the larger.
    by_zone = max(hindsight, hedged("zone"))
    bounds = {
        "hindsight-hedged": by_zone,
        "hindsight-region": max(by_zone, hedged("region")),
        "clairvoyant": max(
            hindsight,
            clairvoyant_cost(
                history, world, goodput=rates,
                slo_tokens_per_second=options.slo_tokens_per_second,
                start_s=start_s, end_s=end_s, ticks=ticks,
            ),
        ),
    }  # fmt: skip
    finished = time.perf_counter()
    return BacktestResult(
        options=options,
        policies=results,
        hindsight_cost_usd=hindsight,
        tick_times_s=ticks,
        world=world,
        hindsight_cumulative_usd=hindsight_curve,
        interruption_events=world.notice_count,
        timing_s={
            "world": sampled_s - started,
            "views": view_s,
            "simulate": simulated_s - sampled_s,
            "measure": finished - simulated_s,
            "planning": sum(policy.decide_s for policy in policies),
            "total": finished - started,
        },
        bounds_usd=bounds,
    )


# --- helpers ------------------------------------------------------------------------------


@dataclass
class _Run:
    name: str
    fleet: Fleet
    #: Pools the world leaves out: always avoided.
    excluded: frozenset[PoolKey] = frozenset()
    #: The base time a pool is avoided after an interruption or a failed launch (seconds).
    avoid_s: float = 3600.0
    #: Until when each marked pool is avoided (epoch seconds).
    avoid_until: dict[PoolKey, float] = field(default_factory=dict)
    #: When each pool's launches failed (for the backoff), oldest first.
    failed_at: dict[PoolKey, list[float]] = field(default_factory=dict)
    decisions: list[tuple[float, tuple[tuple[PoolKey, int], ...]]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)

    def observe(
        self, moment: float, pool: PoolKey, kind: str, *, count: int = 1, at_risk_s: float = 0.0
    ) -> None:
        """An interruption or a failed launch: the pool is marked (avoided), as the actuator
        marks it (a failed launch with :func:`oracle.capacity.backoff_ttl_s`: longer when the
        pool failed before within a day), and the policy remembers it."""
        ttl_s = self.avoid_s
        if kind == "launch-failure":
            failures = self.failed_at.setdefault(pool, [])
            earlier = sum(1 for at in failures if moment - at < BACKOFF_WINDOW_S)
            ttl_s = backoff_ttl_s(self.avoid_s, earlier)
            failures.append(moment)
        self.avoid_until[pool] = max(self.avoid_until.get(pool, moment), moment + ttl_s)
        self.observations.append(Observation(moment, pool, kind, count, at_risk_s))  # type: ignore[arg-type]

    def record_changes(self, moment: float) -> None:
        """The launches that started and the instances retired by the last change of fleet
        (spot only: on-demand carries no risk to learn)."""
        fleet = self.fleet
        for pool, count in sorted(fleet.last_launched.items()):
            if pool.market == "spot":
                self.observations.append(Observation(moment, pool, "launch", count))
        ended: dict[PoolKey, list[float]] = {}
        for instance in fleet.last_ended:
            if instance.pool.market == "spot":
                ended.setdefault(instance.pool, []).append(moment - instance.launched_s)
        for pool, held in sorted(ended.items()):
            self.observations.append(Observation(moment, pool, "held", len(held), sum(held)))

    def state(self, moment: float) -> FleetState:
        avoid = frozenset(key for key, until in self.avoid_until.items() if moment < until)
        return FleetState(
            counts=self.fleet.counts(),
            ready_counts=self.fleet.ready_counts(moment),
            avoid=avoid | self.excluded,
            observations=self.observations,
            launch_times=self.fleet.launch_times(),
        )


def _cover_on_demand(
    policy: Policy,
    run: _Run,
    target: Mapping[PoolKey, int],
    failed: Sequence[PoolKey],
    moment: float,
    rates: Mapping[str, float],
    view: MarketView,
) -> None:
    """The service executor's last resort for a policy that runs through it: the replans are
    spent and spot launches still fail, so what they were to add starts on demand. The policy
    keeps the spot plan it could not launch: the fleet is short of it, so the next tick replans
    and the cover goes once spot launches again, as the service's rebalancer moves a cover
    back to spot at its next run (every 15 minutes; on-demand clears its saving thresholds)."""
    if not policy.falls_back_on_demand:
        return
    prices = {(o.region, o.instance_type): o.price_usd_per_hour for o in view.on_demand_offers}

    def stand_in(pool: PoolKey) -> PoolKey:
        kind = cover_type(
            pool.instance_type, pool.region, goodput=rates, on_demand_usd_per_hour=prices
        )
        return pool._replace(zone="", market="on-demand", instance_type=kind)

    covered = cover_on_demand(target, run.fleet.counts(), failed, stand_in)
    if covered is None:
        return
    run.decisions.append((moment, tuple(sorted(covered.items()))))
    run.fleet.set_target(covered, rates, moment)
    run.record_changes(moment)


def _events(
    ticks: NDArray[np.float64], notices: Mapping[int, NDArray[np.float64]]
) -> list[tuple[float, int, int]]:
    """Ticks and notices in time order; at one moment notices come before the tick."""
    events = [(float(t), _TICK, -1) for t in ticks.tolist()]
    for pool, times in notices.items():
        events += [(float(t), _NOTICE, pool) for t in times.tolist()]
    heapq.heapify(events)
    return [heapq.heappop(events) for _ in range(len(events))]


def _measure(
    history: MarketHistory,
    run: _Run,
    options: BacktestOptions,
    ticks: NDArray[np.float64],
    *,
    decide_s: float,
) -> PolicyResult:
    start_s, end_s = options.start.timestamp(), options.end.timestamp()
    instances = run.fleet.instances
    spend = account(history, instances)
    served, attainment, deficit, moments, capacity = _service(
        instances, options.slo_tokens_per_second, start_s, end_s
    )
    at_tick = np.clip(np.searchsorted(moments, ticks, side="right") - 1, 0, None)
    return PolicyResult(
        name=run.name,
        cost_usd=spend.total_usd,
        served_tokens=served,
        slo_attainment=attainment,
        deficit_tokens=deficit,
        interruptions=run.fleet.interruptions,
        launches=run.fleet.launches,
        decide_s=decide_s,
        launch_failures=run.fleet.launch_failures,
        observations=run.observations,
        deficit_spells_s=_deficit_spells(moments, capacity, options.slo_tokens_per_second, end_s),
        instances=list(instances),
        spend_usd=spend.by_phase,
        pools=spend.by_pool,
        decisions=run.decisions,
        capacity_tokens_per_second=capacity[at_tick] if capacity.size else np.zeros(ticks.size),
        cumulative_cost_usd=_cumulative_cost(history, instances, ticks),
        spot_instances=_billed(instances, ticks, "spot"),
        on_demand_instances=_billed(instances, ticks, "on-demand"),
    )


def _service(
    instances: Sequence[Instance], slo: float, start_s: float, end_s: float
) -> tuple[float, float, float, NDArray[np.float64], NDArray[np.float64]]:
    """Served tokens (capacity up to the SLO rate), the share of time at or above the SLO, and
    the deficit in tokens, integrated exactly over the capacity's steps; and the steps (the
    capacity holds from each moment to the next)."""
    steps: dict[float, float] = {start_s: 0.0}
    for instance in instances:
        begin = max(instance.ready_s, start_s)
        stop = min(instance.stop_serving_s, instance.end_s, end_s)
        if stop > begin:
            steps[begin] = steps.get(begin, 0.0) + instance.tokens_per_second
            steps[stop] = steps.get(stop, 0.0) - instance.tokens_per_second
    moments = sorted(steps)
    capacity = np.cumsum([steps[moment] for moment in moments])
    edges = np.r_[np.asarray(moments), end_s]
    lengths = np.clip(np.diff(edges), 0.0, None)
    span = end_s - start_s
    # Tolerance: float sums of goodput may miss the SLO by rounding only.
    met = capacity >= slo * (1 - 1e-9)
    served = float(np.sum(np.minimum(capacity, slo) * lengths))
    deficit = float(np.sum(np.maximum(slo - capacity, 0.0) * lengths))
    attainment = float(np.sum(lengths[met]) / span) if span > 0 else 1.0
    return served, attainment, deficit, np.asarray(moments), capacity


def _deficit_spells(
    moments: NDArray[np.float64], capacity: NDArray[np.float64], slo: float, end_s: float
) -> NDArray[np.float64]:
    """The lengths of the maximal spells with capacity below the SLO."""
    if capacity.size == 0:
        return np.zeros(0)
    short = capacity < slo * (1 - 1e-9)
    lengths = np.diff(np.r_[moments, end_s])
    spells: list[float] = []
    current = 0.0
    for is_short, length in zip(short.tolist(), lengths.tolist(), strict=True):
        if is_short:
            current += length
        elif current > 0:
            spells.append(current)
            current = 0.0
    if current > 0:
        spells.append(current)
    return np.asarray([x for x in spells if x > 0], dtype=np.float64)


def _cumulative_cost(
    history: MarketHistory, instances: Sequence[Instance], ticks: NDArray[np.float64]
) -> NDArray[np.float64]:
    curve = np.zeros(ticks.size)
    finished = np.zeros(ticks.size + 1)
    for instance in instances:
        first = int(np.searchsorted(ticks, instance.launched_s, side="left"))
        last = int(np.searchsorted(ticks, instance.end_s, side="left"))
        if last > first:
            curve[first:last] += history.cost_curve(
                instance.pool, instance.launched_s, ticks[first:last]
            )
        finished[last] += history.cost(instance.pool, instance.launched_s, instance.end_s)
    return curve + np.cumsum(finished)[:-1]


def _billed(
    instances: Sequence[Instance], ticks: NDArray[np.float64], market: str
) -> NDArray[np.int64]:
    counts = np.zeros(ticks.size + 1, dtype=np.int64)
    for instance in instances:
        if instance.pool.market != market:
            continue
        first = int(np.searchsorted(ticks, instance.launched_s, side="left"))
        last = int(np.searchsorted(ticks, instance.end_s, side="left"))
        counts[first] += 1
        counts[last] -= 1
    return np.cumsum(counts)[:-1]


def _datetime(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
