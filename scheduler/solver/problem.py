"""The solver's inputs and outputs, and the per-pool sums every part of it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

#: Tolerance of the after-solve check, in the rows' own units (tok/s, vCPUs, USD/h).
FEASIBILITY_TOL = 1e-6

Family = Literal["capacity", "quota", "hedge", "pool_share", "budget", "mix"]
Backend = Literal["auto", "highspy", "scipy"]


@dataclass(frozen=True)
class Mix:
    """The workload's buckets: names, shares (summing to 1) and per-pool goodput (n x K, tok/s
    of one instance serving that bucket only; 0: it cannot). See :mod:`scheduler.solver.mix`."""

    bucket_names: tuple[str, ...]
    share: NDArray[np.float64]
    goodput: NDArray[np.float64]
    #: The sets of hedge groups whose loss scenario has routing rows (None: every set the hedge
    #: must survive, :func:`scheduler.solver.mix.all_losses`). :func:`solve` adds them lazily,
    #: as the plans it finds need them.
    scenario_losses: tuple[tuple[int, ...], ...] | None = None
    #: Bucket weights of the hedge cuts (:func:`scheduler.solver.mix._cut_rows`), added lazily.
    cuts: tuple[tuple[float, ...], ...] = ()

    def subset(self, keep: NDArray[np.int64]) -> Mix:
        return Mix(
            self.bucket_names, self.share, self.goodput[keep], self.scenario_losses, self.cuts
        )


@dataclass(frozen=True)
class Problem:
    """One planning MILP. Arrays are per pool, all of length n."""

    cost_usd_per_hour: NDArray[np.float64]
    goodput_tokens_per_second: NDArray[np.float64]
    #: Largest obtainable count per pool; ``np.inf`` for none.
    upper: NDArray[np.float64]
    #: Hedge group index per pool (``-1``: not hedged, e.g. on-demand).
    hedge_group: NDArray[np.int64]
    hedge_group_names: tuple[str, ...]
    #: SLO the hedge rows must keep (tok/s).
    slo_tokens_per_second: float
    #: Throughput the plan must reach (SLO plus headroom).
    required_tokens_per_second: float
    hedge: bool = True
    #: How many hedge groups the SLO must survive losing at once: 1, or 2 (every pair).
    hedge_losses: int = 1
    #: Quota row index per pool (``-1``: none), the vCPUs of one instance, and the row limits.
    quota_row: NDArray[np.int64] | None = None
    vcpus_each: NDArray[np.float64] | None = None
    quota_limit_vcpus: NDArray[np.float64] | None = None
    quota_names: tuple[str, ...] = ()
    max_pool_share: float = 1.0
    budget_usd_per_hour: float | None = None
    running: NDArray[np.int64] | None = None
    switch_cost_usd_per_hour: NDArray[np.float64] | None = None
    #: Interruption risk in [0, 1] per pool, used only to break ties.
    risk: NDArray[np.float64] | None = None
    #: The request mix (:mod:`scheduler.solver.mix`); None: one number per pool, as before.
    #: With a mix, ``goodput_tokens_per_second`` is ``max_k g_pk``
    #: (:func:`scheduler.solver.mix.max_goodput`).
    mix: Mix | None = None

    @property
    def n(self) -> int:
        return len(self.cost_usd_per_hour)


@dataclass(frozen=True)
class Infeasibility:
    """Why no plan exists: the first constraint family that makes the problem infeasible.

    ``achievable`` is the most the earlier families allow, in the family's unit: tok/s for
    capacity, quota and pool_share; tok/s left after the worst loss for hedge; USD/h (the
    cheapest plan) for budget. ``binding`` names the rows that stop it (quota rows, hedge groups).
    """

    family: Family
    achievable: float
    required: float
    binding: tuple[str, ...] = ()
    #: Quota rows full in the best plan the earlier families allow (they limit it too).
    tight_quotas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Solution:
    status: Literal["optimal", "infeasible"]
    counts: NDArray[np.int64]
    #: sum_p c_p x_p: the expected hourly cost of the plan (without switching).
    cost_usd_per_hour: float
    #: Amortised start-up cost of the new instances, USD per hour.
    switching_usd_per_hour: float
    tokens_per_second: float
    #: Throughput left after losing every spot instance of the worst hedge group.
    tokens_per_second_after_worst_loss: float
    worst_loss_group: str | None
    #: Names of the constraints that hold with equality at the optimum.
    binding: tuple[str, ...]
    solve_s: float
    infeasibility: Infeasibility | None = None
    #: The relative gap between the plan and HiGHS's proven lower bound (0: proven optimal).
    mip_gap: float = 0.0
    #: Per-pool flag: the count sits at its upper bound.
    at_cap: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))


class SolverError(RuntimeError):
    """HiGHS returned something that fails the after-solve check (a bug, never user input)."""


def validate(problem: Problem) -> None:
    """Raise ValueError when the arrays disagree in length or hold impossible figures."""
    n = problem.n
    arrays = {
        "goodput_tokens_per_second": problem.goodput_tokens_per_second,
        "upper": problem.upper,
        "hedge_group": problem.hedge_group,
    }
    for name, array in arrays.items():
        if np.shape(array) != (n,):
            raise ValueError(f"{name} has shape {np.shape(array)}, expected ({n},)")
    if np.any(problem.goodput_tokens_per_second <= 0):
        raise ValueError("every pool needs a positive goodput")
    if np.any(problem.cost_usd_per_hour < 0):
        raise ValueError("costs must be non-negative")


def running_counts(problem: Problem) -> NDArray[np.int64]:
    """The instances already running per pool (zeros when none are given)."""
    if problem.running is None:
        return np.zeros(problem.n, dtype=np.int64)
    return np.asarray(problem.running, dtype=np.int64)


def switch_costs(problem: Problem) -> NDArray[np.float64]:
    """The switching cost per new instance per pool, USD per hour (zeros when none are given)."""
    if problem.switch_cost_usd_per_hour is None:
        return np.zeros(problem.n)
    return np.asarray(problem.switch_cost_usd_per_hour, dtype=np.float64)


def switching_usd_per_hour(problem: Problem, x: NDArray[np.float64]) -> float:
    """The amortised start-up cost of the plan ``x``'s new instances, USD per hour."""
    new = np.maximum(x - running_counts(problem), 0)
    return float(switch_costs(problem) @ new)


def group_sums(problem: Problem, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values`` summed per hedge group (pools in none left out)."""
    member = problem.hedge_group >= 0
    return np.bincount(
        problem.hedge_group[member],
        weights=values[member],
        minlength=len(problem.hedge_group_names),
    ).astype(np.float64)


def quota_use(problem: Problem, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The vCPUs the plan ``x`` uses per quota row."""
    assert problem.quota_row is not None and problem.vcpus_each is not None
    assert problem.quota_limit_vcpus is not None
    rows = len(problem.quota_limit_vcpus)
    member = problem.quota_row >= 0
    return np.bincount(
        problem.quota_row[member],
        weights=(problem.vcpus_each * x)[member],
        minlength=rows,
    ).astype(np.float64)
