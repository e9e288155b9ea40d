"""HiGHS, through highspy (HiGHS's own binding, a newer release than scipy's copy) or through
:func:`scipy.optimize.milp`. Each run builds its own solver instance and returns everything it
found in a :class:`Run`: nothing is kept between calls, so threads may run models side by side.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scheduler.solver.model import Model
from scheduler.solver.problem import Backend, SolverError

MIP_REL_GAP = 1e-9
MIP_ABS_GAP = 1e-9
#: Models of at most this many columns run without the heuristics that find first plans in
#: large ones (see :func:`run_highspy`).
SMALL_MODEL_COLUMNS = 256

#: Guards the one-time load of highspy, which points the process's stdout elsewhere for a moment.
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Run:
    """What one run of a model found: the optimal column values, the objective, the relative MIP
    gap HiGHS reported (0 for an LP), and for an LP relaxation the reduced costs."""

    values: NDArray[np.float64]
    objective: float
    mip_gap: float = 0.0
    #: Reduced costs per column (LP relaxations through highspy only; empty otherwise).
    duals: NDArray[np.float64] | None = None


def run_model(
    model: Model,
    *,
    time_limit_s: float | None = None,
    backend: Backend = "auto",
    start: NDArray[np.float64] | None = None,
) -> NDArray[np.float64] | None:
    """The optimal column values, or None when the model is infeasible; ``start`` (all columns,
    highspy only) is a feasible solution HiGHS starts from. See :func:`run` for the gap too."""
    result = run(model, time_limit_s=time_limit_s, backend=backend, start=start)
    return None if result is None else result.values


def run(
    model: Model,
    *,
    time_limit_s: float | None = None,
    backend: Backend = "auto",
    start: NDArray[np.float64] | None = None,
    presolve: bool = True,
) -> Run | None:
    """The optimum of ``model`` with its gap, or None when the model is infeasible;
    ``presolve=False`` skips HiGHS's presolve (highspy only; see :func:`run_highspy`)."""
    highspy = highspy_module() if backend != "scipy" else None
    if backend == "highspy" and highspy is None:
        raise SolverError("highspy is not installed: pip install highspy, or use backend scipy")
    if highspy is None:
        return _run_scipy(model, time_limit_s=time_limit_s)
    return run_highspy(highspy, model, time_limit_s=time_limit_s, start=start, presolve=presolve)


def _run_scipy(model: Model, *, time_limit_s: float | None = None) -> Run | None:
    # Imported here: scipy.optimize costs a process about 0.3 s, and highspy is the default.
    from scipy.optimize import Bounds, LinearConstraint, milp

    options: dict[str, float | bool] = {"mip_rel_gap": MIP_REL_GAP, "disp": False}
    if time_limit_s is not None:
        options["time_limit"] = time_limit_s
    result = milp(
        model.c,
        integrality=model.integrality,
        bounds=Bounds(model.lower, model.upper),
        constraints=LinearConstraint(model.a.tocsr(), model.row_lower, model.row_upper),
        options=options,
    )
    if result.status == 2:  # infeasible
        return None
    if result.x is None:
        raise SolverError(f"HiGHS stopped without a solution: {result.message}")
    values = np.asarray(result.x, dtype=np.float64)
    gap = float(getattr(result, "mip_gap", 0.0) or 0.0)
    return Run(values, float(model.c @ values), gap)


def run_highspy(
    highspy: Any,
    model: Model,
    *,
    time_limit_s: float | None = None,
    start: NDArray[np.float64] | None = None,
    relax: bool = False,
    presolve: bool = True,
) -> Run | None:
    """The same model through highspy, the HiGHS release newer than scipy's copy (which also
    prints debugging lines on stdout during some MIP solves); ``relax``: its LP relaxation,
    with the reduced costs; ``presolve=False``: without HiGHS's presolve, which costs a small
    model more than it saves."""
    inf = highspy.kHighsInf
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    _one_thread(highs)
    highs.setOptionValue("mip_rel_gap", MIP_REL_GAP)
    highs.setOptionValue("mip_abs_gap", MIP_ABS_GAP)
    # The RINS and RENS sub-MIP heuristics cost more than they find on these models: CPU time
    # on the SkyPilot snapshot universe (839 pools, 50k tok/s) fell from 0.90 s to 0.75 s.
    highs.setOptionValue("mip_heuristic_run_rins", False)
    highs.setOptionValue("mip_heuristic_run_rens", False)
    if len(model.c) <= SMALL_MODEL_COLUMNS:
        # So do the root reduced-cost sub-MIP and feasibility jump on small models: the 741
        # MILPs of four days' replay at 2,000 tok/s in the calibrated world (first plans of
        # ~50 pools, narrowed models of up to ~100, mostly proved at the root) took 29.0-33.2 s
        # with them and 20.1-21.2 s without, the same optima. Larger models need them to find
        # a first plan: the 10,000-pool cut solved whole took 16 s with them and 24 s without.
        highs.setOptionValue("mip_heuristic_run_root_reduced_cost", False)
        highs.setOptionValue("mip_heuristic_run_feasibility_jump", False)
    if not model.restart:
        highs.setOptionValue("mip_allow_restart", False)
    if not presolve:
        highs.setOptionValue("presolve", "off")
    if time_limit_s is not None:
        highs.setOptionValue("time_limit", float(time_limit_s))
    lp = highspy.HighsLp()
    lp.num_col_ = len(model.c)
    lp.num_row_ = model.a.shape[0]
    lp.col_cost_ = model.c
    lp.col_lower_ = model.lower
    lp.col_upper_ = np.where(np.isfinite(model.upper), model.upper, inf)
    lp.row_lower_ = np.where(np.isfinite(model.row_lower), model.row_lower, -inf)
    lp.row_upper_ = np.where(np.isfinite(model.row_upper), model.row_upper, inf)
    matrix = model.a
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(np.float64)
    kinds = highspy.HighsVarType
    if not relax:
        lp.integrality_ = [kinds.kInteger if i else kinds.kContinuous for i in model.integrality]
    highs.passModel(lp)
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = list(start)
        solution.value_valid = True
        highs.setSolution(solution)
    highs.run()
    status = highs.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None
    if status != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"HiGHS stopped without an optimal solution: {status}")
    result = highs.getSolution()
    info = highs.getInfo()
    values = np.asarray(result.col_value, dtype=np.float64)
    objective = float(info.objective_function_value)
    if relax:
        duals = np.asarray(result.col_dual, dtype=np.float64)
        return Run(values, objective, 0.0, duals)
    if start is not None and not _consistent(model, values, objective):
        # HiGHS 1.16's presolve can mangle a start: on one 5-pool model it reported an
        # objective of 0.25 for columns that cost 0.75 (the optimum, 0.5, below them). Without
        # the start it solves the model right.
        return run_highspy(highspy, model, time_limit_s=time_limit_s)
    return Run(values, objective, float(info.mip_gap))


def _consistent(model: Model, values: NDArray[np.float64], objective: float) -> bool:
    """Whether HiGHS's reported objective is the cost of the columns it returned."""
    return abs(float(model.c @ values) - objective) <= 1e-9 * max(1.0, abs(objective))


def _one_thread(highs: Any) -> None:
    """These models are small: HiGHS's worker threads cost more CPU than they save (solver CPU
    on the 869-pool sample universe: 0.063 s with two threads, 0.041 s with one). HiGHS fixes
    its thread pool at the first run of a process, so every instance asks for the same."""
    highs.setOptionValue("threads", 1)


def highspy_module() -> Any:
    """highspy when installed (else None: scipy's milp is used)."""
    with _LOAD_LOCK:
        return _load_highspy()


@functools.cache
def _load_highspy() -> Any:
    try:
        import highspy as module
    except ImportError:
        return None
    highspy: Any = module  # its Highs() is untyped
    # The first Highs() of a process prints a banner on stdout, which would corrupt
    # `--format json`; build it once with stdout pointed at /dev/null (under the lock: two
    # threads doing this at once could leave stdout pointing there).
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            _one_thread(highspy.Highs())
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return highspy
