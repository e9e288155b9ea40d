"""The facts a backtest replays, as plain values: spot pools and timelines of observed facts."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scheduler.planning.model import PoolKey


@dataclass(frozen=True)
class SpotPool:
    """A spot pool of the history; ``index`` is its position in :attr:`MarketHistory.pools`."""

    index: int
    region: str
    zone: str
    availability_zone: str | None
    availability_zone_id: str | None
    instance_type: str

    @property
    def key(self) -> PoolKey:
        return PoolKey(self.region, self.zone, self.instance_type, "spot")


@dataclass(frozen=True)
class Timeline:
    """Facts of one key, sorted by the moment each counts as observed."""

    times_s: list[float]
    values: list[Any]

    def at(self, t_s: float) -> Any | None:
        index = bisect.bisect_right(self.times_s, t_s) - 1
        return self.values[index] if index >= 0 else None

    def first(self) -> Any | None:
        return self.values[0] if self.values else None


@dataclass(frozen=True)
class OnDemandPrice:
    price_usd_per_hour: float
    source: str
    effective: datetime


@dataclass(frozen=True)
class Advice:
    band_index: int
    band_label: str
    savings_pct: float
    source: str
    observed_at: datetime


@dataclass(frozen=True)
class Placement:
    scores: dict[int, int]
    source: str | None
    observed_at: datetime | None


def timeline(values: Mapping[float, Any]) -> Timeline:
    moments = sorted(values)
    return Timeline(moments, [values[moment] for moment in moments])


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
