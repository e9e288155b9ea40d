"""Reading a mix plan (:mod:`scheduler.solver.mix`): its capacity in the mix's proportions, what
the worst loss leaves, and, when no plan exists, why."""

from __future__ import annotations

import dataclasses

import numpy as np

from scheduler.solver.backends import run_model
from scheduler.solver.diagnosis import diagnose
from scheduler.solver.mix import mix_capacity
from scheduler.solver.model import build_model
from scheduler.solver.problem import Infeasibility, Problem, Solution


def describe_mix(problem: Problem, solution: Solution) -> Solution:
    """``solution`` with its throughput figures in the mix's proportions: the plan's capacity,
    and what is left after losing the hedge group that leaves the least."""
    counts = solution.counts
    total = mix_capacity(problem, counts)
    after, worst = total, None
    for a, name in enumerate(problem.hedge_group_names):
        if not np.any((problem.hedge_group == a) & (counts > 0)):
            continue
        left = mix_capacity(problem, counts, lost_group=a)
        if left < after:
            after, worst = left, name
    return dataclasses.replace(
        solution,
        tokens_per_second=total,
        tokens_per_second_after_worst_loss=after,
        worst_loss_group=worst,
    )


def diagnose_mix(problem: Problem) -> Infeasibility:
    """Why no plan meets the mix: a single-number family when even the pools' best buckets
    cannot meet it (:func:`scheduler.solver.diagnosis.diagnose`), else ``mix``, with the buckets
    no pool serves as binding and the mix throughput of every obtainable instance."""
    single = dataclasses.replace(problem, mix=None)
    if run_model(build_model(single, cost_bounds=False)) is None:
        return diagnose(single)
    mix = problem.mix
    assert mix is not None
    unserved = tuple(
        name
        for k, name in enumerate(mix.bucket_names)
        if mix.share[k] > 0 and not np.any(mix.goodput[:, k] > 0)
    )
    everything = np.where(np.isfinite(problem.upper), problem.upper, 1e6).astype(np.int64)
    return Infeasibility(
        "mix", mix_capacity(problem, everything), problem.required_tokens_per_second, unserved
    )
