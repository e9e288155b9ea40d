"""Reading a mix plan (:mod:`scheduler.solver.mix`): its capacity in the mix's proportions, what
the worst loss leaves, and, when no plan exists, why."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.backends import run_model
from scheduler.solver.diagnosis import diagnose
from scheduler.solver.mix import capacity_weights, mix_capacity, unmet_losses
from scheduler.solver.model import build_model
from scheduler.solver.problem import Infeasibility, Problem, Solution


def solve_lazily(problem: Problem, solve_one: Callable[[Problem], Solution]) -> Solution:
    """Solve a mix problem with the hedge by adding constraints as plans need them.

    Each round solves a relaxation of the full problem: the routing of the no-loss scenario,
    the per-bucket rows, and the hedge cuts so far. When the plan cannot serve the mix after
    losing some set of groups (one group, or two with ``two-az``;
    :func:`scheduler.solver.mix.unmet_losses`), that scenario's dual bucket weights become a
    new hedge cut over every group (:mod:`scheduler.solver.mix_cuts`); should a cut repeat (no
    progress), the scenario's own routing block is added instead, which settles it exactly. The
    last round's optimum meets every scenario, so it is the optimum of the full problem. On the
    869-pool sample universe (49 AZs) the routing blocks for every AZ took a minute, one block
    per AZ as needed six rounds of several seconds; cuts take a few rounds of well under a
    second.
    """
    assert problem.mix is not None
    started = time.perf_counter()
    cuts = _relaxation_cuts(problem)
    losses: tuple[tuple[int, ...], ...] = ()
    while True:
        trial = dataclasses.replace(
            problem, mix=dataclasses.replace(problem.mix, scenario_losses=losses, cuts=cuts)
        )
        solution = solve_one(trial)
        if solution.status != "optimal":
            return dataclasses.replace(solution, solve_s=time.perf_counter() - started)
        missing = unmet_losses(problem, solution.counts)
        if not missing:
            return dataclasses.replace(
                describe_mix(problem, solution), solve_s=time.perf_counter() - started
            )
        new_losses = list(losses)
        for lost in missing:
            weights = _weights(problem, solution.counts, lost)
            if weights in cuts and lost not in new_losses:
                new_losses.append(lost)
            elif weights not in cuts:
                cuts = (*cuts, weights)
        losses = tuple(sorted(new_losses))


def _weights(problem: Problem, counts: NDArray[Any], lost: tuple[int, ...]) -> tuple[float, ...]:
    """The capacity LP's dual bucket weights after losing ``lost``, rounded (a cut's key)."""
    return tuple(round(float(w), 9) for w in capacity_weights(problem, counts, lost=lost))


#: LP rounds of :func:`_relaxation_cuts` at most (the sample universe settles in two or three).
RELAXATION_ROUNDS = 6
#: Loss sets a round of :func:`_relaxation_cuts` tries at most (the worst screened first): the
#: LP's fractions spread over many groups, and with two losses every pair of them is a set.
RELAXATION_LOSSES = 12


def _relaxation_cuts(problem: Problem) -> tuple[tuple[float, ...], ...]:
    """Hedge cuts found on the LP relaxation first (cheap LPs instead of MILP rounds): solve it,
    add the dual weights of every scenario its fractional plan cannot serve, again until it
    can or :data:`RELAXATION_ROUNDS` pass. Any cut is valid, so this changes no answer; on the
    869-pool universe at 5,000 tok/s it leaves one MILP round instead of two."""
    assert problem.mix is not None
    cuts: tuple[tuple[float, ...], ...] = ()
    for _ in range(RELAXATION_ROUNDS):
        trial = dataclasses.replace(
            problem, mix=dataclasses.replace(problem.mix, scenario_losses=(), cuts=cuts)
        )
        model = build_model(trial)
        values = run_model(dataclasses.replace(model, integrality=np.zeros_like(model.integrality)))
        if values is None:
            break
        x = values[: problem.n]
        added = False
        for lost in unmet_losses(problem, x, limit=RELAXATION_LOSSES):
            weights = _weights(problem, x, lost)
            if weights not in cuts:
                cuts = (*cuts, weights)
                added = True
        if not added:
            break
    return cuts


def describe_mix(problem: Problem, solution: Solution) -> Solution:
    """``solution`` with its throughput figures in the mix's proportions: the plan's capacity,
    and what is left after losing the hedge group that leaves the least."""
    counts = solution.counts
    total = mix_capacity(problem, counts)
    after, worst = total, None
    for a, name in enumerate(problem.hedge_group_names):
        if not np.any((problem.hedge_group == a) & (counts > 0)):
            continue
        left = mix_capacity(problem, counts, lost=(a,))
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
        "mix",
        max(0.0, mix_capacity(problem, everything)),
        problem.required_tokens_per_second,
        unserved,
    )
