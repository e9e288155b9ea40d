"""Simulated instances of one policy: launched, starting (billed, not serving), serving,
draining, interrupted; billed per second at the price in force.

A policy sets a target count per pool; :meth:`Fleet.set_target` launches what is missing at
once and retires what is extra make-before-break: instances still starting are cancelled at
once, serving ones are drained only when every instance launched so far is ready. A drained
instance leaves the load balancer at the drain's start and is billed ``drain_s`` more. An
interruption notice ends every instance of its pool :data:`NOTICE_S` later and is billed until
then, but it stops serving at the notice: the service takes an interrupted replica out of the
load balancer when the warning arrives (:mod:`scheduler.events`), so the replacement's
start-up is a deficit in full unless the rest of the fleet covers it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from scheduler.backtest.world import NOTICE_S
from scheduler.planning.model import PoolKey


@dataclass
class Instance:
    id: int
    pool: PoolKey
    tokens_per_second: float
    launched_s: float
    ready_s: float
    #: When it stops serving and when billing ends (``inf`` while it runs).
    stop_serving_s: float = math.inf
    end_s: float = math.inf
    interrupted_s: float | None = None
    retiring: bool = False
    retired_s: float | None = None

    def alive_at(self, t_s: float) -> bool:
        return self.launched_s <= t_s < self.end_s

    def serving_at(self, t_s: float) -> bool:
        return self.ready_s <= t_s < min(self.stop_serving_s, self.end_s)


@dataclass
class Fleet:
    startup_s: float
    drain_s: float
    instances: list[Instance] = field(default_factory=list)
    launches: int = 0
    interruptions: int = 0
    launch_failures: int = 0
    #: What the last :meth:`set_target` launched per pool, and the instances it retired or
    #: cancelled (for the policy's observations).
    last_launched: dict[PoolKey, int] = field(default_factory=dict)
    last_ended: list[Instance] = field(default_factory=list)
    _next_id: int = 0
    _settled_s: float = -math.inf
    #: The instances still billed at the last :meth:`advance`, in launch order (those that
    #: ended before it drop out for good: times only go forward). The lookups below scan
    #: these, not every instance of the run (thousands over 90 days of a failing world).
    _open: list[Instance] = field(default_factory=list)

    def active(self) -> list[Instance]:
        """Instances that count towards the fleet: running or starting, neither retiring nor
        under an interruption notice."""
        return [i for i in self._open if i.end_s == math.inf and not i.retiring]

    def runs_in(self, pool: PoolKey) -> bool:
        """Whether an instance of ``pool`` is still billed (it could get a notice)."""
        return any(i.pool == pool and i.end_s == math.inf for i in self._open)

    def counts(self) -> dict[PoolKey, int]:
        counts: dict[PoolKey, int] = {}
        for instance in self.active():
            counts[instance.pool] = counts.get(instance.pool, 0) + 1
        return counts

    def launch_times(self) -> dict[PoolKey, list[float]]:
        """Per pool, when each active instance was launched (newest first: the order in which
        :meth:`set_target` retires serving instances)."""
        times: dict[PoolKey, list[float]] = {}
        for instance in self.active():
            times.setdefault(instance.pool, []).append(instance.launched_s)
        return {pool: sorted(values, reverse=True) for pool, values in times.items()}

    def ready_counts(self, t_s: float) -> dict[PoolKey, int]:
        counts: dict[PoolKey, int] = {}
        for instance in self.active():
            if instance.ready_s <= t_s:
                counts[instance.pool] = counts.get(instance.pool, 0) + 1
        return counts

    def set_target(
        self,
        target: Mapping[PoolKey, int],
        goodput: Mapping[str, float],
        t_s: float,
        has_capacity: Callable[[PoolKey], bool] | None = None,
    ) -> list[PoolKey]:
        """Launch and retire so that the active fleet matches ``target`` (pools absent from it
        go to zero). A launch into a pool without capacity (``has_capacity`` false) fails as
        InsufficientInstanceCapacity does: nothing starts, nothing is billed, and what is
        running stays (make-before-break: nothing retires to make room for a failed launch).
        Returns the pools whose launches failed."""
        failed: list[PoolKey] = []
        self.last_launched = {}
        self.last_ended = []
        active = self.active()
        by_pool: dict[PoolKey, list[Instance]] = {}
        for instance in active:
            by_pool.setdefault(instance.pool, []).append(instance)
        pools = sorted(set(by_pool) | set(target))
        for pool in pools:
            have = by_pool.get(pool, [])
            want = max(int(target.get(pool, 0)), 0)
            if want > len(have) and has_capacity is not None and not has_capacity(pool):
                self.launch_failures += 1
                failed.append(pool)
                continue
            for _ in range(want - len(have)):
                self._launch(pool, goodput[pool.instance_type], t_s)
                self.last_launched[pool] = self.last_launched.get(pool, 0) + 1
        if failed:
            # Nothing retires while a launch failed: the policy replans first.
            self.advance(t_s)
            return failed
        for pool in pools:
            have = by_pool.get(pool, [])
            want = max(int(target.get(pool, 0)), 0)
            if len(have) > want:
                # Starting instances go first (newest first): they serve nothing yet.
                extra = sorted(have, key=lambda i: (i.ready_s <= t_s, -i.launched_s))
                for instance in extra[: len(have) - want]:
                    self.last_ended.append(instance)
                    if instance.ready_s > t_s:
                        instance.stop_serving_s = instance.end_s = t_s
                    else:
                        instance.retiring = True
                        instance.retired_s = t_s
        self.advance(t_s)
        return failed

    def advance(self, t_s: float) -> None:
        """Settle the fleet up to ``t_s``: drain each retiring instance once every active
        instance that was still starting when it was retired is ready. Call at every event,
        before and after changing the fleet, with non-decreasing times."""
        floor = self._settled_s
        self._settled_s = t_s
        self._open = [i for i in self._open if i.end_s > t_s]
        retiring = [i for i in self._open if i.retiring and i.end_s == math.inf]
        if not retiring:
            return
        active = self.active()
        for instance in retiring:
            retired = instance.retired_s if instance.retired_s is not None else t_s
            waits = [i.ready_s for i in active if i.ready_s > retired]
            drain_at = max([retired, *waits])
            if drain_at <= t_s:
                # The state changed at ``floor`` at the latest (e.g. the awaited replacement
                # was interrupted), so nothing is drained before it.
                moment = max(drain_at, floor)
                instance.stop_serving_s = min(instance.stop_serving_s, moment)
                instance.end_s = min(instance.end_s, moment + self.drain_s)

    def interrupt(self, pool: PoolKey, notice_s: float) -> int:
        """An interruption notice in ``pool`` (at or after the last :meth:`advance`); returns
        the instances it reclaims."""
        hit = 0
        for instance in self._open:
            if instance.pool == pool and instance.alive_at(notice_s):
                instance.end_s = min(instance.end_s, notice_s + NOTICE_S)
                instance.stop_serving_s = min(instance.stop_serving_s, notice_s)
                instance.interrupted_s = notice_s
                hit += 1
        self.interruptions += hit
        return hit

    def close(self, t_s: float) -> None:
        """End the simulation at ``t_s``: whatever still runs is billed until then."""
        for instance in self.instances:
            if instance.end_s > t_s:
                instance.end_s = t_s
            if instance.stop_serving_s > t_s:
                instance.stop_serving_s = t_s

    def capacity_at(self, t_s: float) -> float:
        return sum(i.tokens_per_second for i in self.instances if i.serving_at(t_s))

    def _launch(self, pool: PoolKey, tokens_per_second: float, t_s: float) -> None:
        instance = Instance(
            id=self._next_id,
            pool=pool,
            tokens_per_second=tokens_per_second,
            launched_s=t_s,
            ready_s=t_s + self.startup_s,
        )
        self.instances.append(instance)
        self._open.append(instance)
        self._next_id += 1
        self.launches += 1
