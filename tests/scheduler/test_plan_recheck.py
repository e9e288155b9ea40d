"""A plan anyone can re-check: its JSON alone (``candidates``, ``limits``) rebuilds the MILP,
which an independent solver (PuLP's CBC, written here from the documented keys, not from the
planner's code) solves to the plan's cost."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import db
from oracle.reference import ensure_goodput_figures
from oracle.sample import ingest_sample
from scheduler.config import PlannerConfig
from scheduler.planner import InfeasiblePlanError, plan_from_data
from scheduler.planning.candidates import PlanningData
from scheduler.planning.load import load_planning_data

REGIONS = ["us-east-1", "us-west-2"]
TYPES = ["g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6e.xlarge", "g5.12xlarge", "p4d.24xlarge"]
MODEL = PlannerConfig().model


@pytest.fixture(scope="module")
def sample_url(_templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite oracle holding a slice of the sample market (two regions, six GPU types)."""
    path = tmp_path_factory.mktemp("recheck") / "oracle.sqlite3"
    shutil.copyfile(_templates["sqlite"], path)
    url = f"sqlite:///{path}"
    engine = db.make_engine(url)
    ingest_sample(engine, seed=7, regions=REGIONS, instance_types=TYPES)
    ensure_goodput_figures(engine, model=MODEL)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def planning_data(sample_url: str) -> Iterator[PlanningData]:
    engine = db.make_engine(sample_url)
    yield load_planning_data(engine, config=PlannerConfig(), model=MODEL)
    engine.dispose()


def test_the_commands_json_rebuilds_to_the_plans_cost(sample_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[planner]\nmax_pool_share = 0.6\n")
    env = {**os.environ, "SCHEDULER_DATABASE_URL": sample_url, "SCHEDULER_CONFIG": str(config)}
    command = [str(Path(sys.executable).parent / "scheduler"), "plan", "--slo", "3000tok/s"]
    done = subprocess.run(
        [*command, "--format", "json", "--budget", "40", "--headroom", "0.1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["limits"]["max_pool_share"] == 0.6
    assert plan["limits"]["budget_usd_per_hour"] == 40.0
    assert plan["limits"]["required_tokens_per_second"] == pytest.approx(3300.0)
    assert {q["source"] for q in plan["limits"]["quotas"]} == {"config"}
    assert plan["solver"]["proven_optimal"] is True and plan["solver"]["backend"]
    assert len(plan["candidates"]) == plan["candidate_count"] > 20
    assert recheck(plan) == pytest.approx(plan["cost_usd_per_hour"], rel=1e-5)

    table = subprocess.run(
        [*command, "--candidates"],
        env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert f"{plan['candidate_count']} candidate pools" in table.stdout
    assert "quota L-3819A6DF: 1,024 vCPUs (config)" in table.stdout
    assert "optimality proven" in table.stdout


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    slo=st.integers(min_value=100, max_value=60_000),
    hedge=st.sampled_from(["auto", "az", "two-az", "region", "none"]),
    share=st.sampled_from([1.0, 0.5, 0.3]),
    quota=st.sampled_from([1024.0, 96.0]),
)
def test_any_plan_rebuilds_to_its_cost(
    planning_data: PlanningData, slo: int, hedge: str, share: float, quota: float
) -> None:
    config = PlannerConfig(
        hedge=hedge,  # type: ignore[arg-type]
        max_pool_share=share,
        quotas=PlannerConfig().quotas.model_copy(update={"spot_g_vt_vcpus": quota}),
    )
    try:
        plan = plan_from_data(planning_data, config=config, slo_tokens_per_second=slo)
    except InfeasiblePlanError:
        # No plan: the independent model must find none either.
        problem, _ = _candidates_of_infeasible(planning_data, config, slo)
        assert problem is None
        return
    document = json.loads(json.dumps(plan.to_dict(), default=str))
    assert recheck(document) == pytest.approx(document["cost_usd_per_hour"], rel=1e-5)


def recheck(plan: dict[str, Any]) -> float | None:
    """The optimum of the plan's MILP rebuilt from its JSON: minimise the expected cost
    subject to the throughput (with headroom), the hedge (losing any one group's spot still
    leaves the SLO), the quota rows, the pool share, the budget and each pool's cap."""
    candidates, limits = plan["candidates"], plan["limits"]
    model = pulp.LpProblem("recheck", pulp.LpMinimize)
    x = [
        model.add_variable(f"x{p}", lowBound=0, upBound=c["cap"], cat="Integer")
        for p, c in enumerate(candidates)
    ]
    goodput = [c["tokens_per_second_each"] for c in candidates]
    cost = [c["expected_cost_usd_per_hour_each"] for c in candidates]
    total = pulp.lpSum(g * v for g, v in zip(goodput, x, strict=True))
    model += pulp.lpSum(c * v for c, v in zip(cost, x, strict=True))
    model += total >= limits["required_tokens_per_second"]
    groups = sorted({c["hedge_group"] for c in candidates if c["hedge_group"]})
    losses = limits["hedge_losses"]
    lost_sets = [{a} for a in groups] if losses == 1 else []
    if losses == 2:  # every pair of groups (a single group's loss is implied)
        lost_sets = [set(pair) for pair in itertools.combinations(groups, 2)] or [set(groups)]
    for lost in lost_sets:
        kept = [
            g * v
            for c, g, v in zip(candidates, goodput, x, strict=True)
            if c["hedge_group"] not in lost
        ]
        model += pulp.lpSum(kept) >= limits["slo_tokens_per_second"]
    for quota in limits["quotas"]:
        used = [
            c["vcpus_each"] * v
            for c, v in zip(candidates, x, strict=True)
            if c["quota"] == quota["quota"]
        ]
        if used:
            model += pulp.lpSum(used) <= quota["limit_vcpus"]
    if limits["max_pool_share"] < 1:
        for g, v in zip(goodput, x, strict=True):
            model += g * v <= limits["max_pool_share"] * total
    if limits["budget_usd_per_hour"] is not None:
        model += (
            pulp.lpSum(c * v for c, v in zip(cost, x, strict=True))
            <= (limits["budget_usd_per_hour"])
        )
    # CBC, not HiGHS: the planner solves with HiGHS, so the re-check uses another solver.
    with warnings.catch_warnings():  # PuLP 3 announces CBC's move to COIN_CMD in PuLP 4
        warnings.simplefilter("ignore", DeprecationWarning)
        status = model.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=1e-9, timeLimit=60))
    if pulp.LpStatus[status] != "Optimal":
        return None
    return float(pulp.value(model.objective))


def _candidates_of_infeasible(
    data: PlanningData, config: PlannerConfig, slo: int
) -> tuple[float | None, None]:
    """Rebuild the JSON a plan would carry for an infeasible problem and solve it: the
    candidates and limits come from the same explain functions the plan uses."""
    from scheduler.planning import explain
    from scheduler.planning.candidates import build_candidates
    from scheduler.planning.problem import build_problem

    candidates = build_candidates(data, config).candidates
    planning = build_problem(
        candidates, config=config, quotas=data.quotas, slo_tokens_per_second=slo
    )
    document = {
        "candidates": explain.candidate_rows(planning),
        "limits": explain.limits(planning, config),
    }
    return recheck(document), None
