r"""How often a plan would miss its SLO, from the pools' learned risk (pure).

Notation: a plan runs ``x_p`` instances of goodput ``g_p`` in pool p; a spot pool has hazard
``lambda_p`` (losses per hour of held capacity, :mod:`oracle.risk`); ``tau`` is the replacement
time in hours (``planner.replacement_time_s``);
``rho`` the share of an AZ's outages that take its whole region (``planner.region_correlation``);
``S`` the SLO. On-demand pools are never lost.

1. A spot pool is **down** (lost and not yet replaced) with probability
   ``d_p = min(1, lambda_p tau)``: each loss leaves its capacity missing for one replacement's
   start-up. The replacement is launched at the notice, and a launch refused for capacity
   costs no time: it is retried at once in the pools a replan picks and, when three replans
   fail, started on demand (:mod:`scheduler.planning.fallback`). So a pool's launch
   availability (:mod:`oracle.risk`) says where a replacement lands, not how long it takes;
   what lands elsewhere or on demand is priced in the restart cost
   (:mod:`scheduler.planning.candidates`).
2. An AZ z is down with ``D_z = 1 - prod_{p in z, x_p > 0} (1 - d_p)`` (its pools together).
3. Correlation: a region r suffers a **shock** taking all its AZs with probability
   ``R_r = rho max_{z in r} D_z``, and each AZ an outage of its own with ``I_z = (1 - rho) D_z``.
   The 2023 p3.2xlarge traces put ``rho`` at 0.40 to 0.59 (WORLD.md, within-region
   correlation); regions are taken as independent (0.14 across regions there). An AZ is then
   down with ``1 - (1 - I_z)(1 - R_r) >= D_z`` (the shock is sized by the region's riskiest AZ:
   conservative), and every event's probability rises with every pool's hazard, so the
   attainment below never rises when a hazard does.
4. Events: each AZ alone (``I_z``) and each region shock (``R_r``), all independent. A set of
   events removes the spot capacity ``L`` of the AZs it takes; its deficit
   is ``delta = max(0, S - (sum_p g_p x_p - L))``. With ``r_e = P(e) / (1 - P(e))`` and
   ``Q = prod_e (1 - P(e))``, exactly the events in a set E happen with ``Q prod_{e in E} r_e``.

Up to 12 events every set is enumerated (exact under these assumptions). Beyond, sets of at
most two events are, and three or more, ``P3 = 1 - Q (1 + sum_e r_e + sum_{e < f} r_e r_f)``,
are taken to lose every zone any event takes (conservative: P3 is third order in the outage
probabilities). Then ``miss = sum_{E: delta_E > 0} Q prod_{e in E} r_e``, the **attainment** is
``1 - miss``, and the **expected deficit** is ``sum_E P(E) delta_E`` tok/s. Its price,
``deficit_usd_per_hour = expected deficit x deficit price``, is what an unserved tok/s for an
hour is worth to the user (``planner.deficit_price_multiple`` times the cheapest on-demand cost
of a tok/s).

A plan hedged at depth ``az`` survives every AZ alone by construction (its misses are pairs and
shocks), ``region`` every shock too, ``two-az`` every pair of AZs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class PlannedPool:
    """One pool of a plan, as the risk model sees it."""

    region: str
    zone: str
    market: str
    tokens_per_second: float
    hazard_per_hour: float


@dataclass(frozen=True)
class PlanRisk:
    attainment: float
    expected_deficit_tokens_per_second: float
    #: The most likely event that misses the SLO, in words ("" when none does).
    worst_event: str
    worst_event_probability: float


def plan_risk(
    pools: Sequence[PlannedPool],
    *,
    slo_tokens_per_second: float,
    replacement_hours: float,
    region_correlation: float,
) -> PlanRisk:
    """The attainment and expected deficit of the plan ``pools`` (see the module docstring)."""
    total = sum(pool.tokens_per_second for pool in pools)
    zone_up: dict[tuple[str, str], float] = {}
    zone_loss: dict[tuple[str, str], float] = {}
    for pool in pools:
        if pool.market != "spot" or pool.tokens_per_second <= 0:
            continue
        key = (pool.region, pool.zone)
        down = min(1.0, pool.hazard_per_hour * replacement_hours)
        zone_up[key] = zone_up.get(key, 1.0) * (1.0 - down)
        zone_loss[key] = zone_loss.get(key, 0.0) + pool.tokens_per_second
    zone_down = {key: 1.0 - up for key, up in zone_up.items()}
    shock: dict[str, float] = {}
    for (region, _zone), down in zone_down.items():
        shock[region] = max(shock.get(region, 0.0), region_correlation * down)
    # (probability, name, the zones it takes) of each independent event.
    events: list[tuple[float, str, frozenset[tuple[str, str]]]] = []
    for key, down in zone_down.items():
        events.append(((1.0 - region_correlation) * down, f"{key[1]} alone", frozenset([key])))
    for region, probability in shock.items():
        zones = frozenset(key for key in zone_down if key[0] == region)
        events.append((probability, f"all of {region}", zones))
    events = [(min(p, 1.0 - 1e-12), name, zones) for p, name, zones in events if p > 0]

    def short_of(zones: frozenset[tuple[str, str]]) -> float:
        return slo_tokens_per_second - (total - sum(zone_loss[key] for key in zones))

    miss = deficit = worst_p = 0.0
    worst = ""
    for probability, name, zones in _event_sets(events, exact=len(events) <= EXACT_EVENTS):
        short = short_of(zones)
        if short > 1e-9:
            miss += probability
            deficit += probability * short
            if probability > worst_p:
                worst, worst_p = name, probability
    if total < slo_tokens_per_second:
        return PlanRisk(0.0, slo_tokens_per_second - total, "the plan itself", 1.0)
    return PlanRisk(min(1.0, max(0.0, 1.0 - miss)), deficit, worst, worst_p)


#: Up to this many independent events, every combination is enumerated (2^12 = 4,096 sets).
EXACT_EVENTS = 12


def _event_sets(
    events: list[tuple[float, str, frozenset[tuple[str, str]]]], *, exact: bool
) -> list[tuple[float, str, frozenset[tuple[str, str]]]]:
    """(probability, name, zones taken) of each combination of events that happen together,
    the rest not: all of them when ``exact``, else those of at most two events and one more
    entry, "three or more outages", taking every zone any event takes (conservative)."""
    no_event = math.prod(1.0 - p for p, _, _ in events)
    odds = [p / (1.0 - p) for p, _, _ in events]
    out: list[tuple[float, str, frozenset[tuple[str, str]]]] = []
    largest = len(events) if exact else 2
    for size in range(1, largest + 1):
        for chosen in combinations(range(len(events)), size):
            probability = no_event * math.prod(odds[i] for i in chosen)
            name = " and ".join(events[i][1] for i in chosen)
            zones = frozenset().union(*(events[i][2] for i in chosen))
            out.append((probability, name, zones))
    if not exact:
        beyond = max(0.0, 1.0 - no_event - sum(p for p, _, _ in out))
        everything = frozenset().union(*(zones for _, _, zones in events))
        out.append((beyond, "three or more outages", everything))
    return out
