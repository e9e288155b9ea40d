"""Planning for a request mix: the workload's buckets, each type's goodput per bucket, the
solver's :class:`~scheduler.solver.problem.Mix` for a set of candidates, and which buckets each
pool of a plan serves (``scheduler plan --workload``; the mathematics is in
:mod:`scheduler.solver.mix`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oracle.goodput import GoodputFact
from scheduler.solver import Problem
from scheduler.solver.mix import max_goodput, routing
from scheduler.solver.problem import Mix

#: Routed tok/s below this are rounding, not routing.
MIN_ROUTED_TOKENS_PER_SECOND = 1e-6


@dataclass(frozen=True)
class WorkloadMix:
    """A workload's buckets with their shares of the output tokens, and the goodput facts per
    instance type and bucket (measured, imported or estimated, each with its provenance)."""

    workload_id: str
    source: str
    bucket_names: tuple[str, ...]
    shares: tuple[float, ...]
    facts: Mapping[str, Mapping[str, GoodputFact]]

    def goodput_row(self, instance_type: str) -> NDArray[np.float64]:
        per_bucket = self.facts.get(instance_type, {})
        return np.array(
            [
                per_bucket[name].goodput_tokens_per_second if name in per_bucket else 0.0
                for name in self.bucket_names
            ]
        )

    def rate_alone(self, instance_type: str) -> float:
        """tok/s of one instance serving the whole mix by itself (time-sliced over the
        buckets): ``1 / sum_k w_k / g_k``; 0 when it lacks a bucket with a share."""
        row = self.goodput_row(instance_type)
        share = np.array(self.shares)
        if np.any((share > 0) & (row <= 0)):
            return 0.0
        return float(1.0 / np.sum(share[share > 0] / row[share > 0]))

    def to_dict(self) -> dict[str, object]:
        return {
            "workload_id": self.workload_id,
            "source": self.source,
            "buckets": dict(zip(self.bucket_names, self.shares, strict=True)),
        }


def type_facts(mix: WorkloadMix) -> dict[str, GoodputFact]:
    """One fact per instance type for the candidates: its best bucket's (the single-number rows
    of the mix model use ``max_k g_pk``), with that bucket's provenance."""
    share = dict(zip(mix.bucket_names, mix.shares, strict=True))
    out: dict[str, GoodputFact] = {}
    for instance_type, per_bucket in mix.facts.items():
        served = [fact for name, fact in per_bucket.items() if share.get(name, 0.0) > 0]
        if served:
            out[instance_type] = max(served, key=lambda f: f.goodput_tokens_per_second)
    return out


def with_mix(problem: Problem, instance_types: Sequence[str], mix: WorkloadMix) -> Problem:
    """``problem`` (one pool per entry of ``instance_types``) with the mix's rows."""
    solver_mix = Mix(
        mix.bucket_names,
        np.array(mix.shares, dtype=np.float64),
        np.array([mix.goodput_row(t) for t in instance_types]).reshape(
            len(instance_types), len(mix.bucket_names)
        ),
    )
    return dataclasses.replace(
        problem, mix=solver_mix, goodput_tokens_per_second=max_goodput(solver_mix)
    )


def routed_buckets(problem: Problem, counts: NDArray[np.int64]) -> list[dict[str, float]]:
    """Per pool, the tok/s of each bucket it serves in the plan (nothing lost); empty dicts
    without a mix."""
    if problem.mix is None:
        return [{} for _ in range(problem.n)]
    routed = routing(problem, counts)
    return [
        {
            name: float(routed[p, k])
            for k, name in enumerate(problem.mix.bucket_names)
            if routed[p, k] > MIN_ROUTED_TOKENS_PER_SECOND
        }
        for p in range(problem.n)
    ]
