"""Plain words for a plan: which constraints bind, why none exists, and what the data is worth."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from scheduler.config import PlannerConfig
from scheduler.planning.candidates import Candidate, CandidateSet
from scheduler.planning.model import Binding, DataAge
from scheduler.planning.problem import PlanningProblem, QuotaRow
from scheduler.solver import MIP_REL_GAP, Infeasibility, Solution
from scheduler.solver.backends import highspy_module

#: The kinds of fact whose age is held against planner.staleness_limit_hours.
STALENESS_CHECKED = ("spot prices", "placement scores")


def bindings(planning: PlanningProblem, solution: Solution) -> list[Binding]:
    """Each constraint that holds with equality at the optimum, in words."""
    rows = {row.name: row for row in planning.quota_rows}
    problem = planning.problem
    goodput = problem.goodput_tokens_per_second * solution.counts
    totals = _group_totals(planning, goodput)
    lost_by_group = dict(zip(problem.hedge_group_names, totals, strict=True))
    out: list[Binding] = []
    for name in solution.binding:
        kind, _, detail = name.partition(":")
        if kind == "throughput":
            out.append(
                Binding(
                    "throughput",
                    f"capacity of {solution.tokens_per_second:,.0f} tok/s is within one instance "
                    f"of the required {problem.required_tokens_per_second:,.0f} tok/s",
                )
            )
        elif kind == "hedge":
            out.append(
                Binding(
                    name,
                    f"{planning.group_kind} hedge: losing every spot instance in {detail} leaves "
                    f"{solution.tokens_per_second - lost_by_group[detail]:,.0f} tok/s, within one "
                    f"instance of the SLO of {problem.slo_tokens_per_second:,.0f} tok/s",
                )
            )
        elif kind == "quota":
            row = rows[detail]
            out.append(
                Binding(
                    f"quota:{row.quota_code}:{row.region}",
                    f"vCPU quota {row.description}: {row.limit_vcpus:,.0f} vCPUs "
                    f"(from {row.source}) leaves no room for another instance",
                )
            )
        elif kind == "pool_share":
            out.append(
                Binding(
                    "pool_share",
                    f"planner.max_pool_share = {problem.max_pool_share:g} limits a pool's share",
                )
            )
        elif kind == "budget":
            out.append(
                Binding("budget", f"the budget of ${problem.budget_usd_per_hour:,.2f}/h is spent")
            )
    for p in np.flatnonzero(solution.at_cap):
        candidate = planning.candidates[int(p)]
        if candidate.cap_source:
            out.append(
                Binding(
                    f"cap:{_pool_name(candidate)}",
                    f"{_pool_name(candidate)} is at its obtainable count of {candidate.cap:g} "
                    + (
                        f"(placement score {candidate.placement_score})"
                        if candidate.cap_source == "placement-score"
                        else "(no placement score: planner.default_spot_cap)"
                    ),
                )
            )
    return out


def infeasibility_message(
    planning: PlanningProblem, infeasibility: Infeasibility, config: PlannerConfig
) -> str:
    """One sentence: what stops a plan, by how much, and how to relax it."""
    problem = planning.problem
    need = problem.required_tokens_per_second
    family = infeasibility.family
    if family == "capacity":
        return (
            f"the obtainable capacity of the {problem.n} candidate pools is "
            f"{infeasibility.achievable:,.0f} tok/s, short of the {need:,.0f} tok/s needed; "
            "allow more regions or instance types, lower planner.min_placement_score or raise "
            "planner.default_spot_cap"
        )
    if family == "quota":
        rows = {row.name: row for row in planning.quota_rows}
        tight = [rows[name] for name in infeasibility.binding if name in rows]
        raise_what = (
            "raise " + ", ".join(f"{row.description}" for row in tight[:3])
            if tight
            else "raise the vCPU quotas"
        )
        hedge = " or relax the hedge" if problem.hedge else ""
        return (
            f"quotas allow {infeasibility.achievable:,.0f} tok/s in the allowed regions, short "
            f"of the {need:,.0f} tok/s needed; {raise_what}{hedge} "
            "(Service Quotas, or [planner.quotas] in config.toml)"
        )
    if family == "hedge":
        where = ", ".join(infeasibility.binding[:3]) or "any"
        rows = {row.name: row for row in planning.quota_rows}
        tight = [rows[name] for name in infeasibility.tight_quotas if name in rows]
        quota = "".join(f", raise {row.description}" for row in tight[:2])
        return (
            f"with hedge = {config.hedge!r}, at most {infeasibility.achievable:,.0f} tok/s "
            f"survive losing the spot capacity of the worst {planning.group_kind} ({where}), "
            f"short of the SLO of {problem.slo_tokens_per_second:,.0f} tok/s; allow on-demand "
            f"(planner.markets), more regions or instance types{quota}, or relax planner.hedge"
        )
    if family == "mix":
        unserved = (
            f" (no candidate serves {', '.join(infeasibility.binding)})"
            if infeasibility.binding
            else ""
        )
        return (
            f"the obtainable capacity of the {problem.n} candidate pools serves at most "
            f"{infeasibility.achievable:,.0f} tok/s of the workload's mix{unserved}, short of "
            f"the {need:,.0f} tok/s needed; measure the missing buckets (`scheduler bench run "
            "--workload`), allow more regions or instance types, or raise planner.default_spot_cap"
        )
    if family == "pool_share":
        return (
            f"with planner.max_pool_share = {problem.max_pool_share:g} at most "
            f"{infeasibility.achievable:,.0f} tok/s can be planned, short of the {need:,.0f} "
            "tok/s needed; raise planner.max_pool_share"
        )
    return (
        f"the cheapest plan costs ${infeasibility.achievable:,.2f}/h, above the budget of "
        f"${infeasibility.required:,.2f}/h; raise planner.budget_usd_per_hour (0 = no budget)"
    )


def no_candidates_message(
    candidates: CandidateSet, model: str, config: PlannerConfig, as_of: datetime
) -> str:
    reasons = sorted(candidates.excluded.items(), key=lambda item: -item[1])
    if reasons:
        why = "; ".join(f"{count} pools: {reason}" for reason, count in reasons[:4])
    else:
        where = f" in {', '.join(config.regions_allow)}" if config.regions_allow else ""
        which = (
            f" for {', '.join(config.instance_types_allow)}" if config.instance_types_allow else ""
        )
        why = f"the oracle holds no prices{where}{which} as of {as_of:%Y-%m-%d %H:%M} UTC"
    return (
        f"no pool can serve {model}: {why}; sync or import prices (`scheduler oracle sync`), "
        "record goodput (`scheduler bench run`), or widen the planner's filters"
    )


def data_ages(
    chosen: Sequence[Candidate], planning: PlanningProblem, as_of: datetime
) -> list[DataAge]:
    spot = [c for c in chosen if c.pool.market == "spot" and c.stats is not None]
    facts: dict[str, list[tuple[str | None, datetime | None]]] = {
        "spot prices": [(c.price_source, c.price_observed_at) for c in spot],
        "on-demand prices": [
            (c.offer.source, c.offer.observed_at) for c in chosen if c.offer is not None
        ],
        "placement scores": [
            (c.stats.placement_source, c.stats.placement_observed_at)
            for c in spot
            if c.stats is not None and c.stats.placement_source
        ],
        "interruption bands": [
            (c.stats.advisor_source, c.stats.advisor_observed_at)
            for c in spot
            if c.stats is not None and c.stats.advisor_source
        ],
        "goodput": [(c.goodput.source, c.goodput.observed_at) for c in chosen],
        "quotas": [(row.source, row.observed_at) for row in planning.quota_rows],
    }
    return [_age(kind, pairs, as_of) for kind, pairs in facts.items() if pairs]


def warnings(
    chosen: Sequence[Candidate], ages: Iterable[DataAge], config: PlannerConfig
) -> list[str]:
    out: list[str] = []
    sample = [age.kind for age in ages if "sample" in age.sources]
    if sample:
        out.append(
            f"{', '.join(sample)} are SAMPLE data (synthetic, generated locally), not AWS's: "
            "sync real data with `scheduler oracle sync` before acting on this plan"
        )
    for source, word in (("reference", "published reference"), ("estimated", "estimated")):
        types = sorted({c.pool.instance_type for c in chosen if c.goodput.source == source})
        if types:
            out.append(
                f"goodput of {', '.join(types)} is {word}, not measured on your setup: "
                "measure it with `scheduler bench run`"
            )
    for age in ages:
        # List prices, bands, goodput and quotas change rarely; market facts go stale.
        if age.kind not in STALENESS_CHECKED:
            continue
        if age.age_hours is not None and age.age_hours > config.staleness_limit_hours:
            out.append(
                f"{age.kind} are {_hours(age.age_hours)} old, older than "
                f"planner.staleness_limit_hours = {config.staleness_limit_hours:g}"
            )
    unscored = sorted({_pool_name(c) for c in chosen if c.cap_source == "default"})
    if unscored:
        out.append(
            f"{len(unscored)} chosen spot pool(s) have no placement score and are capped at "
            f"planner.default_spot_cap = {config.default_spot_cap}: {', '.join(unscored[:4])}"
        )
    unbanded = sorted({_pool_name(c) for c in chosen if not c.band_known})
    if unbanded:
        out.append(
            f"{len(unbanded)} chosen spot pool(s) have no Spot Advisor band and are priced at "
            f"the worst band (>20%): {', '.join(unbanded[:4])}"
        )
    return out


def _age(
    kind: str, pairs: Sequence[tuple[str | None, datetime | None]], as_of: datetime
) -> DataAge:
    sources = tuple(sorted({source for source, _ in pairs if source}))
    times = [observed for _, observed in pairs if observed is not None]
    oldest = min(times) if times else None
    newest = max(times) if times else None
    # The age is that of the newest fact: a pool whose spot price has not changed for days is
    # not stale when its neighbours' prices changed an hour ago.
    age = (as_of - newest).total_seconds() / 3600.0 if newest is not None else None
    return DataAge(kind, sources, oldest, newest, age)


def _group_totals(planning: PlanningProblem, values: np.ndarray) -> list[float]:
    problem = planning.problem
    totals = [0.0] * len(problem.hedge_group_names)
    for group, value in zip(problem.hedge_group.tolist(), values.tolist(), strict=True):
        if group >= 0:
            totals[group] += value
    return totals


def _hours(hours: float) -> str:
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def _pool_name(candidate: Candidate) -> str:
    pool = candidate.pool
    where = pool.zone or pool.region
    return f"{pool.instance_type} {pool.market} in {where}"


def recheck(planning: PlanningProblem, solution: Solution, config: PlannerConfig) -> dict[str, Any]:
    """The plan's ``candidates``, ``limits`` and ``solver``: what anyone needs to solve the same
    MILP again from the plan's JSON alone and compare the optimum."""
    return {
        "candidates": candidate_rows(planning),
        "limits": limits(planning, config),
        "solver": solver_info(solution),
    }


def candidate_rows(planning: PlanningProblem) -> list[dict[str, Any]]:
    """Every pool the solver chose from, with what it needs to rebuild the MILP without the
    database: expected cost, price, interruption cost and goodput of one instance, the cap the
    solver used (``None``: only the quota rows bound it) and why, the vCPUs and quota row that
    count it, its hedge group (``None`` for on-demand) and learned hazard. No more than that:
    /recommendations carries one row per pool (871 on the sample market, about 0.4 MB)."""
    problem = planning.problem
    rows = []
    for p, candidate in enumerate(planning.candidates):
        pool = candidate.pool
        quota = _quota_of(planning, p)
        upper = float(problem.upper[p])
        group = int(problem.hedge_group[p])
        rows.append(
            {
                "region": pool.region,
                "availability_zone": candidate.availability_zone,
                "zone": pool.zone,
                "instance_type": pool.instance_type,
                "market": pool.market,
                "expected_cost_usd_per_hour_each": candidate.expected_cost_usd_per_hour,
                "price_usd_per_hour_each": candidate.price_usd_per_hour,
                "interruption_cost_usd_per_hour_each": candidate.interruption_usd_per_hour,
                "tokens_per_second_each": candidate.tokens_per_second,
                "cap": None if math.isinf(upper) else upper,
                "cap_reason": _cap_reason(planning, p, quota),
                "vcpus_each": candidate.spec.vcpus,
                "quota": None if quota is None else f"{quota.quota_code}:{quota.region}",
                "hedge_group": problem.hedge_group_names[group] if group >= 0 else None,
                "hazard_per_hour": candidate.hazard_per_hour,
            }
        )
    return rows


def limits(planning: PlanningProblem, config: PlannerConfig) -> dict[str, Any]:
    """The constraints the candidates were planned under, as numbers with their sources."""
    problem = planning.problem
    return {
        "slo_tokens_per_second": problem.slo_tokens_per_second,
        "required_tokens_per_second": problem.required_tokens_per_second,
        "headroom_fraction": config.headroom_fraction,
        "hedge": _depth(planning),
        "hedge_groups": planning.group_kind if problem.hedge else None,
        # The SLO must survive losing this many hedge groups at once (2: every pair of AZs).
        "hedge_losses": problem.hedge_losses if problem.hedge else 0,
        "quotas": [
            {
                "quota": f"{row.quota_code}:{row.region}",
                "quota_code": row.quota_code,
                "description": row.description,
                "region": row.region,
                "market": row.market,
                "instance_class": row.instance_class,
                "limit_vcpus": row.limit_vcpus,
                "source": row.source,
                "observed_at": row.observed_at,
            }
            for row in planning.quota_rows
        ],
        "max_pool_share": problem.max_pool_share,
        "budget_usd_per_hour": problem.budget_usd_per_hour,
    }


def solver_info(solution: Solution) -> dict[str, Any]:
    """How the MILP was solved: the backend, HiGHS's relative MIP gap at the end, the seconds
    spent and whether optimality was proven (the gap within the solver's tolerance)."""
    # The planner solves with backend "auto": highspy when installed, else scipy's milp.
    return {
        "backend": "highspy" if highspy_module() is not None else "scipy",
        "mip_gap": solution.mip_gap,
        "mip_rel_gap_tolerance": MIP_REL_GAP,
        "solve_s": solution.solve_s,
        "proven_optimal": solution.status == "optimal" and solution.mip_gap <= MIP_REL_GAP,
    }


def _depth(planning: PlanningProblem) -> str:
    problem = planning.problem
    if not problem.hedge:
        return "none"
    if planning.group_kind == "region":
        return "region"
    return "two-az" if problem.hedge_losses == 2 else "az"


def _quota_of(planning: PlanningProblem, p: int) -> QuotaRow | None:
    rows = planning.problem.quota_row
    index = -1 if rows is None else int(rows[p])
    return planning.quota_rows[index] if index >= 0 else None


def _cap_reason(planning: PlanningProblem, p: int, quota: QuotaRow | None) -> str:
    """Why the pool's count is bounded where it is: the smaller of the placement cap and what
    the quota alone allows, then the pool share (a bound relative to the total)."""
    candidate = planning.candidates[p]
    problem = planning.problem
    reasons = []
    quota_count = (
        math.floor(quota.limit_vcpus / max(candidate.spec.vcpus, 1)) if quota else math.inf
    )
    if candidate.cap_source and candidate.cap <= quota_count:
        reasons.append(
            f"placement score {candidate.placement_score}"
            if candidate.cap_source == "placement-score"
            else "no placement score: planner.default_spot_cap"
        )
    if quota is not None and quota_count <= candidate.cap:
        reasons.append(f"quota {quota.quota_code} in {quota.region}: {quota.limit_vcpus:g} vCPUs")
    if problem.max_pool_share < 1:
        reasons.append(f"pool share at most {problem.max_pool_share:g} of the total")
    return "; ".join(reasons) or "none"
