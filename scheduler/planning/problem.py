"""Candidates -> the solver's arrays: costs, goodput, caps, hedge groups, quota rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from oracle.quotas import QUOTA_CODES, QUOTA_NAMES, VcpuQuota, instance_class
from scheduler.config import PlannerConfig, QuotaConfig
from scheduler.planning.candidates import BAND_MONTHLY_RATE, HOURS_PER_MONTH, Candidate
from scheduler.planning.mix import WorkloadMix, with_mix
from scheduler.planning.model import Allocation, PoolKey
from scheduler.solver import Problem

_CONFIG_FIELDS = {
    ("spot", "G/VT"): "spot_g_vt_vcpus",
    ("spot", "P"): "spot_p_vcpus",
    ("on-demand", "G/VT"): "on_demand_g_vt_vcpus",
    ("on-demand", "P"): "on_demand_p_vcpus",
}
_MAX_HAZARD_PER_HOUR = max(BAND_MONTHLY_RATE) / HOURS_PER_MONTH


@dataclass(frozen=True)
class QuotaRow:
    region: str
    market: str
    instance_class: str
    quota_code: str
    limit_vcpus: float
    #: "aws" (or the oracle's source) when ingested from Service Quotas, else "config".
    source: str
    observed_at: datetime | None

    @property
    def name(self) -> str:
        return f"{self.region} {self.market} {self.instance_class}"

    @property
    def description(self) -> str:
        return f"{QUOTA_NAMES[self.quota_code]} ({self.quota_code}) in {self.region}"


@dataclass(frozen=True)
class PlanningProblem:
    problem: Problem
    candidates: Sequence[Candidate]
    quota_rows: Sequence[QuotaRow]
    group_kind: str
    mix: WorkloadMix | None = None


def build_problem(
    candidates: Sequence[Candidate],
    *,
    config: PlannerConfig,
    quotas: Mapping[tuple[str, str], VcpuQuota],
    slo_tokens_per_second: float,
    running: Mapping[PoolKey, int] | None = None,
    hedge: bool | None = None,
    depth: str | None = None,
    mix: WorkloadMix | None = None,
) -> PlanningProblem:
    """The MILP for ``candidates`` hedged at ``depth`` (``az``, ``region``, ``two-az`` or
    ``none``; default: the configured hedge, ``auto`` starting at ``az``); ``hedge`` turns the
    hedge off or on (for baselines); ``mix``: plan for a request mix (its rows,
    :mod:`scheduler.solver.mix`)."""
    running = running or {}
    depth = depth or ("az" if config.hedge == "auto" else config.hedge)
    hedged = depth != "none" if hedge is None else hedge
    group_kind = "region" if depth == "region" else "az"
    n = len(candidates)
    cost = np.array([c.expected_cost_usd_per_hour for c in candidates], dtype=np.float64)
    goodput = np.array([c.tokens_per_second for c in candidates], dtype=np.float64)
    vcpus = np.array([c.spec.vcpus for c in candidates], dtype=np.float64)
    upper = np.array([c.cap for c in candidates], dtype=np.float64)

    groups: dict[str, int] = {}
    hedge_group = np.full(n, -1, dtype=np.int64)
    rows: dict[tuple[str, str, str], int] = {}
    quota_rows: list[QuotaRow] = []
    quota_row = np.full(n, -1, dtype=np.int64)
    for p, candidate in enumerate(candidates):
        key = candidate.pool
        if key.market == "spot":
            group = key.region if group_kind == "region" else key.zone
            hedge_group[p] = groups.setdefault(group, len(groups))
        klass = instance_class(key.instance_type)
        if klass is None:
            continue
        row_key = (key.region, key.market, klass)
        if row_key not in rows:
            rows[row_key] = len(quota_rows)
            quota_rows.append(_quota_row(row_key, quotas, config))
        quota_row[p] = rows[row_key]
        # A count can never exceed what the quota alone allows; tight bounds help HiGHS.
        limit = quota_rows[rows[row_key]].limit_vcpus
        upper[p] = min(upper[p], math.floor(limit / max(vcpus[p], 1)))

    startup_share = config.startup_time_s / 3600.0 / config.horizon_hours
    problem = Problem(
        cost_usd_per_hour=cost,
        goodput_tokens_per_second=goodput,
        upper=upper,
        hedge_group=hedge_group,
        hedge_group_names=tuple(groups),
        slo_tokens_per_second=slo_tokens_per_second,
        required_tokens_per_second=slo_tokens_per_second * (1 + config.headroom_fraction),
        hedge=hedged,
        hedge_losses=2 if depth == "two-az" else 1,
        quota_row=quota_row,
        vcpus_each=vcpus,
        quota_limit_vcpus=np.array([row.limit_vcpus for row in quota_rows], dtype=np.float64),
        quota_names=tuple(row.name for row in quota_rows),
        max_pool_share=config.max_pool_share,
        budget_usd_per_hour=config.budget_usd_per_hour or None,
        running=np.array([running.get(c.pool, 0) for c in candidates], dtype=np.int64),
        # With no running fleet every instance is new: the switching cost would scale every
        # cost alike and change nothing, so it is left out.
        switch_cost_usd_per_hour=cost * startup_share if running else None,
        risk=np.array([c.hazard_per_hour for c in candidates]) / _MAX_HAZARD_PER_HOUR,
    )
    if mix is not None:
        problem = with_mix(problem, [c.pool.instance_type for c in candidates], mix)
    return PlanningProblem(problem, candidates, quota_rows, group_kind, mix)


def _quota_row(
    key: tuple[str, str, str],
    quotas: Mapping[tuple[str, str], VcpuQuota],
    config: PlannerConfig,
) -> QuotaRow:
    region, market, klass = key
    code = QUOTA_CODES[(market, klass)]
    known = quotas.get((region, code))
    if known is not None:
        return QuotaRow(
            region, market, klass, code, known.value_vcpus, known.source, known.observed_at
        )
    section: QuotaConfig = config.quotas.regions.get(region, config.quotas)
    limit = float(getattr(section, _CONFIG_FIELDS[(market, klass)]))
    return QuotaRow(region, market, klass, code, limit, "config", None)


def allocations(
    candidates: Sequence[Candidate],
    counts: Sequence[int],
    buckets: Sequence[dict[str, float]] | None = None,
) -> list[Allocation]:
    """The chosen pools (count > 0) as allocations, cheapest per tok/s first; ``buckets``: per
    candidate, the tok/s of each workload bucket it serves (with a request mix)."""
    routed = buckets if buckets is not None else [{} for _ in candidates]
    chosen = [
        Allocation(
            pool=candidate.pool,
            availability_zone=candidate.availability_zone,
            availability_zone_id=candidate.availability_zone_id,
            count=int(count),
            tokens_per_second_each=candidate.tokens_per_second,
            price_usd_per_hour_each=candidate.price_usd_per_hour,
            expected_cost_usd_per_hour_each=candidate.expected_cost_usd_per_hour,
            interruption_band=candidate.band_label if candidate.pool.market == "spot" else None,
            placement_score=candidate.placement_score,
            cap=None if math.isinf(candidate.cap) else candidate.cap,
            cap_source=candidate.cap_source,
            goodput_source=candidate.goodput.source,
            vcpus_each=candidate.spec.vcpus,
            accelerator=f"{candidate.spec.accelerator_name}:{candidate.spec.accelerator_count}",
            buckets=served,
        )
        for candidate, count, served in zip(candidates, counts, routed, strict=True)
        if count > 0
    ]
    chosen.sort(key=lambda a: (a.usd_per_hour_per_tokens_per_second, a.pool))
    return chosen
