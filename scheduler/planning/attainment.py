r"""How often a plan would miss its SLO, from the pools' learned risk (pure).

Notation: a plan runs ``x_p`` instances of goodput ``g_p`` in pool p; a spot pool has hazard
``lambda_p`` (losses per hour of held capacity) and launch availability ``a_p``
(:mod:`oracle.risk`); ``tau`` is the replacement time in hours (``planner.replacement_time_s``);
``rho`` the share of an AZ's outages that take its whole region (``planner.region_correlation``);
``S`` the SLO. On-demand pools are never lost.

1. A spot pool is **down** (lost and not yet replaced) with probability
   ``d_p = min(1, lambda_p tau / a_p)``: each loss leaves its capacity missing for a
   replacement's start-up, and a replacement launch succeeds with probability ``a_p`` (the lost
   pool's own availability stands in for the pool a replan picks: conservative).
2. An AZ z is down with ``D_z = 1 - prod_{p in z, x_p > 0} (1 - d_p)`` (its pools together).
3. Correlation: a region r suffers a **shock** taking all its AZs with probability
   ``R_r = rho max_{z in r} D_z``; each AZ is down alone with ``I_z = D_z - R_r`` (>= 0). The
   2023 p3.2xlarge traces put ``rho`` at 0.40 to 0.59 (WORLD.md, within-region correlation);
   regions are taken as independent (0.14 across regions there).
4. Events, to second order: each AZ alone (``I_z``), each region shock (``R_r``), and each pair
   of them (product of the two). An event e removes the spot capacity ``L_e`` of what it takes;
   the deficit is ``delta_e = max(0, S - (sum_p g_p x_p - L_e))``.

Then ``miss = min(1, sum_{e: delta_e > 0} P(e))`` (a union bound: overlaps and third-order
events are left out, so it errs on the side of missing), the **attainment** is ``1 - miss``,
and the **expected deficit** is ``sum_e P(e) delta_e`` tok/s. Its price,
``deficit_usd_per_hour = expected deficit x deficit price``, is what an unserved tok/s for an
hour is worth to the user (``planner.deficit_usd_per_token_per_second_hour``).

A plan hedged at depth ``az`` survives every AZ alone by construction (its misses are pairs and
shocks), ``region`` every shock too, ``two-az`` every pair of AZs.
"""

from __future__ import annotations

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
    launch_availability: float


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
        down = min(
            1.0, pool.hazard_per_hour * replacement_hours / max(pool.launch_availability, 1e-9)
        )
        zone_up[key] = zone_up.get(key, 1.0) * (1.0 - down)
        zone_loss[key] = zone_loss.get(key, 0.0) + pool.tokens_per_second
    zone_down = {key: 1.0 - up for key, up in zone_up.items()}
    shock: dict[str, float] = {}
    for (region, _zone), down in zone_down.items():
        shock[region] = max(shock.get(region, 0.0), region_correlation * down)
    # (probability, lost spot tok/s, name, the zones it takes) of each first-order event.
    first: list[tuple[float, float, str, frozenset[tuple[str, str]]]] = []
    for key, down in zone_down.items():
        alone = max(0.0, down - shock[key[0]])
        first.append((alone, zone_loss[key], f"{key[1]} alone", frozenset([key])))
    for region, probability in shock.items():
        zones = frozenset(key for key in zone_down if key[0] == region)
        lost = sum(zone_loss[key] for key in zones)
        first.append((probability, lost, f"all of {region}", zones))
    events = [(p, lost, name) for p, lost, name, _ in first]
    for (p1, _, n1, z1), (p2, _, n2, z2) in combinations(first, 2):
        zones = z1 | z2
        if z1 <= z2 or z2 <= z1:
            continue  # an AZ with its own region's shock: the shock alone
        events.append((p1 * p2, sum(zone_loss[key] for key in zones), f"{n1} and {n2}"))
    miss = 0.0
    deficit = 0.0
    worst, worst_p = "", 0.0
    for probability, lost, name in events:
        short = slo_tokens_per_second - (total - lost)
        if short > 1e-9 and probability > 0:
            miss += probability
            deficit += probability * short
            if probability > worst_p:
                worst, worst_p = name, probability
    if total < slo_tokens_per_second:
        return PlanRisk(0.0, slo_tokens_per_second - total, "the plan itself", 1.0)
    return PlanRisk(max(0.0, 1.0 - miss), deficit, worst, worst_p)
