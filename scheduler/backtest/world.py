"""The simulated spot world: when each pool has capacity, and when instances get the notice.

A :class:`World` holds, per spot pool (index into :attr:`MarketHistory.pools`), the intervals
in which the pool has no spot capacity, and the moments at which running instances get the
two-minute notice. Capacity is all or nothing: a pool with capacity has room for any fleet (the
1-node traces this world is fitted to probe one instance at a time, so they say no more than
that). Hence:

- a launch into a pool inside a down interval fails, as ``InsufficientInstanceCapacity`` does;
- when a pool's capacity falls to nothing (a down interval starts), every instance running
  there gets the notice, leaves the load balancer at once and is billed two minutes more;
- on-demand capacity never fails.

Three worlds, chosen by ``--world``:

- ``advisor``: capacity never fails; notices come from a Poisson process per pool at its Spot
  Advisor band's rate (:mod:`scheduler.backtest.interruptions`). The world of earlier releases,
  kept for comparison.
- ``traces``: real availability traces (:mod:`scheduler.backtest.traces`) drive the pools they
  cover; the others are left out or follow ``calibrated``.
- ``calibrated``: a generator fitted to the real traces (:mod:`scheduler.backtest.calibrated`).

Every world is drawn once per seed, before any policy runs, so every policy faces the same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Seconds between an interruption notice and the instance's end (AWS's two-minute warning).
NOTICE_S = 120.0

WORLD_NAMES = ("advisor", "traces", "calibrated")


@dataclass(frozen=True)
class DownIntervals:
    """Sorted, disjoint ``[starts[i], ends[i])`` in which a pool has no spot capacity."""

    starts: NDArray[np.float64]
    ends: NDArray[np.float64]

    def covers(self, t_s: float) -> bool:
        index = int(np.searchsorted(self.starts, t_s, side="right")) - 1
        return index >= 0 and t_s < float(self.ends[index])

    def up_share(self, start_s: float, end_s: float) -> float:
        """Share of ``[start_s, end_s)`` with capacity."""
        span = end_s - start_s
        if span <= 0:
            return 1.0
        down = np.clip(np.minimum(self.ends, end_s) - np.maximum(self.starts, start_s), 0, None)
        return float(1.0 - down.sum() / span)


@dataclass(frozen=True)
class World:
    name: str
    #: Per pool index: when it has no capacity (pools absent always have capacity).
    down: Mapping[int, DownIntervals]
    #: Per pool index: notice times (sorted); in a capacity world, the starts of ``down``.
    notices: Mapping[int, NDArray[np.float64]]
    #: The world's parameters, as printed and in JSON ``world``.
    parameters: Mapping[str, Any] = field(default_factory=dict)
    #: Pools the world leaves out (``traces`` with untraced pools left out).
    excluded: frozenset[int] = frozenset()

    def has_capacity(self, pool: int, t_s: float) -> bool:
        intervals = self.down.get(pool)
        return intervals is None or not intervals.covers(t_s)

    def usable_during(self, pool: int, start_s: float, end_s: float) -> bool:
        """Whether an instance of ``pool`` can serve at some moment of ``[start_s, end_s)``:
        the pool has capacity then. An instance serves nowhere inside a down interval: a launch
        there fails, and one running when it starts gets the notice and leaves the load
        balancer at once."""
        intervals = self.down.get(pool)
        if intervals is None:
            return True
        index = int(np.searchsorted(intervals.starts, start_s, side="right")) - 1
        return index < 0 or float(intervals.ends[index]) < end_s

    @property
    def notice_count(self) -> int:
        return int(sum(times.size for times in self.notices.values()))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **dict(self.parameters)}


def from_down_intervals(
    name: str,
    down: Mapping[int, DownIntervals],
    *,
    start_s: float,
    end_s: float,
    parameters: Mapping[str, Any],
    excluded: frozenset[int] = frozenset(),
) -> World:
    """A capacity world: notices at the start of every down interval inside the window (a
    pool down at ``start_s`` gives none: nothing runs there yet)."""
    notices = {}
    for pool, intervals in down.items():
        times = intervals.starts[(intervals.starts > start_s) & (intervals.starts < end_s)]
        if times.size:
            notices[pool] = times.astype(np.float64)
    return World(name, dict(down), notices, parameters, excluded)


def merge_intervals(starts: NDArray[np.float64], ends: NDArray[np.float64]) -> DownIntervals:
    """The union of ``[starts[i], ends[i])`` as sorted disjoint intervals."""
    if starts.size == 0:
        return DownIntervals(np.zeros(0), np.zeros(0))
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    opens = np.r_[True, starts[1:] > reach[:-1]]
    group = np.cumsum(opens) - 1
    merged_starts = starts[opens]
    merged_ends = np.zeros(merged_starts.size)
    np.maximum.at(merged_ends, group, ends)
    return DownIntervals(merged_starts.astype(np.float64), merged_ends)


@dataclass(frozen=True)
class WorldOptions:
    """Which world to draw, and how."""

    name: str = "calibrated"
    #: Folder of trace sets, and the set the ``traces`` world replays.
    trace_dir: str = ""
    trace_set: str = "aws-02-15-2023"
    #: ``traces``: what pools without a trace do: "leave-out" or "calibrated".
    untraced: str = "leave-out"
