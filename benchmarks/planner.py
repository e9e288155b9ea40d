"""Benchmark of the planner (not a test).

    python -m benchmarks.planner [--slo 5000] [--cbc-time-limit-s 120] [--repeat 3]
    python -m benchmarks.planner --workload chat [--slo 5000]

With ``--workload``: the mix-aware plan against the single-number plan on per-bucket figures
from the Mélange paper's ratios (:mod:`benchmarks.planner_mix`), and nothing else.

1. The full universe: the embedded sample market (every GPU type of the catalog in every region
   and AZ, 90 days) ingested into a fresh SQLite oracle with the reference and estimated goodput
   of the default model; ``make_plan`` end to end from the database (load, build, solve,
   baselines) and its parts.
2. Cuts of 100, 1,000, the full universe and 10,000 pools (the larger cuts add synthetic copies of
   the universe's pools in synthetic regions, prices jittered by up to 10%, seeded): the same
   model solved by HiGHS through highspy (the planner's default), by ``scipy.optimize.milp`` (the
   HiGHS copy bundled in scipy) and by CBC through PuLP (the solver SkyPilot's optimizer and
   Melange use), with the ratio of CBC's time to highspy's and the optimality gap of each against
   the best objective found.

Every solver gets :func:`scheduler.solver.build_model`'s arrays, with its exact strengthening
(goodput capped at the SLO in the hedge and throughput rows, bounds a cheapest plan never
exceeds): CBC gains from it as much as HiGHS does (10,000 pools: 12.0 s -> 2.4 s CPU).

Times are wall-clock medians of ``--repeat`` runs. The machine's load average is printed with
them: on a shared machine, read the ratios rather than the absolute figures.

This script stands outside the harness's layering (``bench`` imports only ``oracle``): it
measures the scheduler's planner, so it imports ``scheduler``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import planner_mix
from oracle import db
from oracle.reference import ensure_goodput_figures
from oracle.sample import ingest_sample
from scheduler.config import PlannerConfig
from scheduler.planner import make_plan
from scheduler.planning.candidates import Candidate, build_candidates
from scheduler.planning.load import load_planning_data
from scheduler.planning.model import PoolKey
from scheduler.planning.problem import build_problem
from scheduler.solver import (
    Backend,
    Model,
    Problem,
    build_model,
    plan_columns,
    run_model,
    solve,
)

END = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 2026


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--slo", type=float, help="tok/s (default 5000; with --workload, 500 and 5000)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cbc-time-limit-s", type=float, default=120.0)
    parser.add_argument("--cuts", default="100,1000,full,10000")
    parser.add_argument(
        "--workload", help="compare the mix-aware and single-number plans for this mix"
    )
    args = parser.parse_args(argv)
    if args.workload:
        slos = [args.slo] if args.slo else [500.0, 5000.0]
        planner_mix.run(workload=args.workload, slos=slos, repeat=args.repeat)
        return
    args.slo = args.slo or 5000.0
    config = PlannerConfig()
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as directory:
        engine = db.make_engine(f"sqlite:///{Path(directory) / 'bench.sqlite3'}")
        db.upgrade(engine)
        started = time.perf_counter()
        rows = ingest_sample(engine, seed=SEED, end=END)
        added = ensure_goodput_figures(engine, model=config.model)
        print(
            f"sample market: {sum(rows.values()):,} rows, {added} goodput figures, "
            f"in {time.perf_counter() - started:.1f} s"
        )
        as_of = END
        times: dict[str, list[float]] = {"total": [], "load": [], "build": [], "solve": []}
        plan = None
        for _ in range(args.repeat):
            plan = make_plan(engine, config=config, slo_tokens_per_second=args.slo, as_of=as_of)
            for key in times:
                times[key].append(plan.timing_s[key])
            times.setdefault("baselines", []).append(plan.timing_s["baselines"])
        assert plan is not None
        print(
            f"\nfull universe from the database: {plan.candidates} pools, SLO {args.slo:,.0f} "
            f"tok/s, ${plan.cost_usd_per_hour:,.2f}/h "
            f"(all on-demand ${plan.baselines['all_on_demand'].cost_usd_per_hour or 0:,.2f}/h)"
        )
        print(
            "  median s: "
            + ", ".join(f"{key} {statistics.median(values):.3f}" for key, values in times.items())
        )
        data = load_planning_data(engine, config=config, model=config.model, as_of=as_of)
        universe = build_candidates(data, config).candidates
        engine.dispose()
    quotas = data.quotas
    synthetic = _synthetic(universe, 10_000)
    print(
        "\nplanner: scheduler.solver.solve (exact narrowing, HiGHS via highspy, after-solve "
        "check); highspy, scipy: the full model straight into HiGHS; CBC: the same model "
        "through PuLP (its build time apart). Seconds as wall/CPU; ratio = CBC/planner CPU."
    )
    print(
        f"{'pools':>6} {'planner':>13} {'highspy':>13} {'scipy':>13} {'CBC':>13} "
        f"{'PuLP build':>10} {'ratio':>6} {'gap planner':>11} {'gap highspy':>11} "
        f"{'gap scipy':>9} {'gap CBC':>8}"
    )
    for cut in args.cuts.split(","):
        size = len(universe) if cut == "full" else int(cut)
        pools = universe if cut == "full" else synthetic[:size]
        problem = build_problem(
            pools, config=config, quotas=quotas, slo_tokens_per_second=args.slo
        ).problem
        model = build_model(problem)
        row = _compare(problem, model, args.repeat, args.cbc_time_limit_s)
        print(
            f"{size:>6} {_pair(row, 'planner')} {_pair(row, 'highspy')} {_pair(row, 'scipy')} "
            f"{_pair(row, 'cbc')} {row['pulp_build_s']:>10.3f} "
            f"{row['cbc_cpu_s'] / max(row['planner_cpu_s'], 1e-9):>6.1f} "
            f"{row['gap_planner']:>11.2e} {row['gap_highspy']:>11.2e} "
            f"{row['gap_scipy']:>9.2e} {row['gap_cbc']:>8.2e}"
            + ("  (CBC hit its time limit)" if row["cbc_limit"] else "")
        )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


def _pair(row: dict[str, Any], name: str) -> str:
    return f"{row[name + '_s']:>6.3f}/{row[name + '_cpu_s']:<6.3f}"


def _synthetic(universe: Sequence[Candidate], size: int) -> list[Candidate]:
    """``size`` pools: the universe shuffled, then copies in synthetic regions ``<region>-sN``
    (their own zones, hedge groups and quota rows) with prices jittered by up to 10%."""
    rng = np.random.default_rng(SEED)
    shuffled = [universe[i] for i in rng.permutation(len(universe))]
    out = list(shuffled)
    copy = 0
    while len(out) < size:
        copy += 1
        for candidate in shuffled:
            jitter = float(rng.uniform(0.9, 1.1))
            pool = candidate.pool
            suffix = f"-s{copy}"
            out.append(
                dataclasses.replace(
                    candidate,
                    pool=PoolKey(
                        pool.region + suffix,
                        pool.zone + suffix if pool.zone else "",
                        pool.instance_type,
                        pool.market,
                    ),
                    price_usd_per_hour=candidate.price_usd_per_hour * jitter,
                    interruption_usd_per_hour=candidate.interruption_usd_per_hour * jitter,
                )
            )
            if len(out) == size:
                break
    order = rng.permutation(len(out))
    return [out[i] for i in order[:size]]


def _compare(problem: Problem, model: Model, repeat: int, cbc_limit_s: float) -> dict[str, Any]:
    """Wall and CPU seconds (medians) and objectives of the planner's solve, the plain model in
    highspy and in scipy, and CBC; gaps against the best objective, all on the model's own
    objective (tie-break included)."""
    results: dict[str, Any] = {}
    objectives: dict[str, float] = {}
    solution, results["planner_s"], results["planner_cpu_s"] = _timed(
        functools.partial(solve, problem), repeat
    )
    objectives["planner"] = _objective(model, _model_columns(problem, model, solution.counts))
    backends: tuple[Backend, ...] = ("highspy", "scipy")
    for backend in backends:
        x, results[f"{backend}_s"], results[f"{backend}_cpu_s"] = _timed(
            functools.partial(run_model, model, backend=backend), repeat
        )
        objectives[backend] = _objective(model, x)
    x_cbc, build_s, cbc_s, cbc_cpu_s, hit_limit = _cbc(model, cbc_limit_s)
    results.update(cbc_s=cbc_s, cbc_cpu_s=cbc_cpu_s, pulp_build_s=build_s, cbc_limit=hit_limit)
    objectives["cbc"] = _objective(model, x_cbc)
    best = min(value for value in objectives.values() if np.isfinite(value))
    for name, value in objectives.items():
        results[f"gap_{name}"] = (value - best) / best if np.isfinite(value) else float("inf")
    return results


def _timed(run: Callable[[], Any], repeat: int) -> tuple[Any, float, float]:
    """The result, and the median wall and CPU seconds (this process, all its threads)."""
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, statistics.median(walls), statistics.median(cpus)


def _objective(model: Model, x: Any) -> float:
    if x is None:
        return float("inf")
    return float(model.c @ np.asarray(x, dtype=np.float64))


def _model_columns(problem: Problem, model: Model, counts: Any) -> Any:
    """The model's columns for a plan (x, the total T, the new-instance columns, and the capped
    hedge total when the model has one)."""
    return plan_columns(problem, model, np.asarray(counts, dtype=np.int64))


def _cbc(model: Model, time_limit_s: float) -> tuple[Any, float, float, float, bool]:
    """The identical model through PuLP and CBC: (x, PuLP build s, CBC wall s, CBC CPU s (the
    cbc child process), hit limit)."""
    import pulp

    started = time.perf_counter()
    problem = pulp.LpProblem("plan", pulp.LpMinimize)
    columns = [
        pulp.LpVariable(
            f"x{j}",
            lowBound=float(model.lower[j]),
            upBound=float(model.upper[j]) if np.isfinite(model.upper[j]) else None,
            cat="Integer" if model.integrality[j] else "Continuous",
        )
        for j in range(len(model.c))
    ]
    problem += pulp.lpDot(model.c.tolist(), columns)
    matrix = model.a.tocsr()
    for r in range(matrix.shape[0]):
        lo, hi = float(model.row_lower[r]), float(model.row_upper[r])
        span = slice(matrix.indptr[r], matrix.indptr[r + 1])
        expression = pulp.LpAffineExpression(
            [
                (columns[j], float(v))
                for j, v in zip(matrix.indices[span], matrix.data[span], strict=True)
            ]
        )
        if lo == hi:
            problem += expression == lo
            continue
        if np.isfinite(lo):
            problem += expression >= lo
        if np.isfinite(hi):
            problem += expression <= hi
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    problem.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=1e-9, timeLimit=time_limit_s))
    solve_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    hit_limit = solve_s >= time_limit_s * 0.98
    if pulp.LpStatus[problem.status] not in ("Optimal", "Not Solved") and not hit_limit:
        return None, build_s, solve_s, cpu_s, hit_limit
    values = [column.value() for column in columns]
    if any(value is None for value in values):
        return None, build_s, solve_s, cpu_s, hit_limit
    return np.array(values, dtype=np.float64), build_s, solve_s, cpu_s, hit_limit


if __name__ == "__main__":
    main()
