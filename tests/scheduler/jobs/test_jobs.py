"""The rebalance job as the worker runs it: recorded, fixed or load-following SLO."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.executor import Actuator
from scheduler.config import JobsConfig, PlannerConfig, Settings
from scheduler.jobs import rebalance as rebalance_job
from scheduler.jobs.context import JobContext, set_current
from scheduler.models import JobRunModel
from scheduler.services.planning import plan_and_store, planner_replanner
from tests.scheduler.market import MODEL, seed_market


@pytest.mark.parametrize("mode", ["fixed", "load"])
def test_the_rebalance_job_records_its_decision(
    engine: Engine,
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
    mode: str,
) -> None:
    zones = network["zones"]
    seed_market(
        engine,
        zones,
        {
            (zones[0][1], "g5.xlarge"): 0.3,
            (zones[1][1], "g5.xlarge"): 0.3,
            (zones[2][1], "g6.xlarge"): 0.25,
        },
    )
    jobs = JobsConfig(slo_mode=mode, scale_up_delay_s=3600.0, scale_down_delay_s=3600.0)  # type: ignore[arg-type]
    job_settings = settings.model_copy(update={"planner": PlannerConfig(model=MODEL), "jobs": jobs})
    actuator = make_actuator(
        engine, settings=job_settings, replan=planner_replanner(engine, job_settings)
    )
    plan_id, _ = plan_and_store(engine, job_settings, slo_tokens_per_second=600.0, origin="test")
    actuator.apply(plan_id)
    set_current(JobContext(engine, job_settings, lambda: actuator, worker="test"))

    first = rebalance_job.run().details
    second = rebalance_job.run().details

    assert first["act"] is False and "already matches" in first["reason"]
    with transaction(engine) as session:
        runs = session.scalars(sa.select(JobRunModel).order_by(JobRunModel.id)).all()
        assert [(r.job, r.status, r.worker) for r in runs] == [("rebalance", "ok", "test")] * 2
    if mode == "load":
        # The first run scraped the replicas' counters; the second measured a rate against it
        # and holds the SLO until the scale delay has passed.
        assert "tokens_total" in first["load"]
        assert "rate_tokens_per_second" in second["load"]
        assert second["act"] is False
