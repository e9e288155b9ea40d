"""End to end with the real planner on a hand-made market: plan, apply, interrupt, rebalance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.executor import Actuator
from scheduler.config import JobsConfig, PlannerConfig, Settings
from scheduler.events import handle_event, parse_event
from scheduler.models import ReplicaModel
from scheduler.services.planning import plan_and_store, planner_replanner
from scheduler.services.rebalance import rebalance
from tests.scheduler.fleet_helpers import (
    interruption,
    live_by_pool,
    replica_rows,
    running_by_pool,
)
from tests.scheduler.market import MODEL, seed_market, set_spot_price

SLO = 600.0


@pytest.fixture
def market_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"planner": PlannerConfig(model=MODEL)})


@pytest.fixture
def seeded(engine: Engine, network: dict[str, Any]) -> list[tuple[str, str]]:
    zones: list[tuple[str, str]] = network["zones"]
    (_, a), (_, b), (_, c) = zones
    seed_market(
        engine,
        zones,
        {
            (a, "g5.xlarge"): 0.30,
            (b, "g5.xlarge"): 0.35,
            (c, "g6.xlarge"): 0.25,
            (b, "g6.xlarge"): 0.40,
        },
    )
    return zones


def _planned_actuator(
    engine: Engine, settings: Settings, make_actuator: Callable[..., Actuator]
) -> tuple[Actuator, int]:
    actuator = make_actuator(engine, settings=settings, replan=planner_replanner(engine, settings))
    plan_id, plan = plan_and_store(engine, settings, slo_tokens_per_second=SLO, origin="test")
    assert plan.allocations
    return actuator, plan_id


def _wanted(actuator: Actuator, plan_id: int) -> dict[str, int]:
    return {a.pool.label: a.count for a in actuator.plan_allocations(plan_id)}


def test_plan_apply_interruption_with_the_real_planner(
    engine: Engine,
    aws: Callable[..., Any],
    seeded: list[tuple[str, str]],
    market_settings: Settings,
    make_actuator: Callable[..., Actuator],
    capsys: pytest.CaptureFixture[str],
) -> None:
    actuator, plan_id = _planned_actuator(engine, market_settings, make_actuator)
    result = actuator.apply(plan_id)
    assert not result.failed
    assert running_by_pool(aws) == _wanted(actuator, plan_id) == live_by_pool(engine)

    rows = replica_rows(engine)
    victim, (_, _, victim_pool, registered) = next(iter(rows.items()))
    assert registered
    outcome = handle_event(actuator, parse_event(interruption(victim)), channel="api")

    replacement = outcome.replacement
    assert outcome.deregistered is True and replacement is not None
    assert len(replacement.launched) >= 1
    assert victim not in actuator.target_group.registered()  # type: ignore[union-attr]
    replacement_plan = _wanted(actuator, replacement.plan_id)
    assert victim_pool not in replacement_plan  # replanned without the interrupted pool
    after = replica_rows(engine)
    new_pools = {after[i][2] for i in after if i not in rows}
    assert victim_pool not in new_pools
    with capsys.disabled():
        print(f"\nevent to replacement launch accepted: {replacement.event_to_launch_s:.3f} s")


def test_rebalancer_moves_only_past_its_thresholds(
    engine: Engine,
    aws: Callable[..., Any],
    seeded: list[tuple[str, str]],
    market_settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    actuator, plan_id = _planned_actuator(engine, market_settings, make_actuator)
    actuator.apply(plan_id)
    before = running_by_pool(aws)
    now = datetime.now(UTC)

    # Nothing changed: the fleet matches the best plan.
    quiet = rebalance(actuator, now=now)
    assert quiet.act is False and "already matches" in quiet.reason

    # The cheapest chosen pool's price triples: a better plan exists.
    zone_a = seeded[0][1]
    set_spot_price(engine, seeded, zone_a, "g5.xlarge", 0.95, at=now - timedelta(minutes=1))
    strict = JobsConfig(
        rebalance_min_saving_pct=90.0,
        rebalance_min_saving_usd_per_hour=0.01,
        rebalance_min_dwell_s=0.0,
    )
    actuator.settings = market_settings.model_copy(update={"jobs": strict})
    held = rebalance(actuator, now=now)
    assert held.act is False and "under the thresholds" in held.reason
    assert held.decision is not None and held.decision.saving_usd_per_hour > 0
    assert running_by_pool(aws) == before

    loose = strict.model_copy(update={"rebalance_min_saving_pct": 10.0})
    actuator.settings = market_settings.model_copy(update={"jobs": loose})
    moved = rebalance(actuator, now=now)
    assert moved.act is True, moved.reason
    assert moved.decision is not None and moved.decision.saving_pct >= 10.0
    assert moved.result is not None and moved.result.launched and moved.result.terminated
    after = running_by_pool(aws)
    assert after != before
    assert after == live_by_pool(engine)
    assert not any(f"/{zone_a}/g5.xlarge/spot" in pool for pool in after)
    with transaction(engine) as session:
        ready = session.scalar(
            sa.select(sa.func.sum(ReplicaModel.tokens_per_second)).where(
                ReplicaModel.state == "READY"
            )
        )
    assert ready is not None and ready >= SLO


def test_spot_capacity_errors_replan_to_on_demand_with_the_real_planner(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    market_settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    from scheduler.actuator.ec2 import Ec2Adapter
    from tests.scheduler.fleet_helpers import SpotRefused

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
    client = SpotRefused(aws("ec2"), "InsufficientInstanceCapacity", "no capacity")
    ec2 = Ec2Adapter(lambda _region: client, market_settings.service, model=MODEL)
    actuator = make_actuator(
        engine, settings=market_settings, ec2=ec2, replan=planner_replanner(engine, market_settings)
    )
    plan_id, plan = plan_and_store(
        engine, market_settings, slo_tokens_per_second=SLO, origin="test"
    )
    assert {a.pool.market for a in plan.allocations} == {"spot"}
    result = actuator.apply(plan_id)

    assert client.refused == sum(a.count for a in plan.allocations)
    assert result.replans and not result.failed
    final = _wanted(actuator, result.replans[-1])
    assert final and all(pool.endswith("/on-demand") for pool in final)
    assert running_by_pool(aws) == final == live_by_pool(engine)


def test_a_replacement_refused_for_capacity_is_replanned(
    engine: Engine,
    aws: Callable[..., Any],
    seeded: list[tuple[str, str]],
    market_settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    from scheduler.actuator.ec2 import Ec2Adapter
    from tests.scheduler.fleet_helpers import SpotRefused

    client = SpotRefused(aws("ec2"), "InsufficientInstanceCapacity", "no capacity")
    refusing = {"on": False}
    real_run = client.run_instances

    def run_instances(**params: Any) -> Any:
        if refusing["on"]:
            return real_run(**params)
        return client._real.run_instances(**params)

    client.run_instances = run_instances  # type: ignore[method-assign]
    ec2 = Ec2Adapter(lambda _region: client, market_settings.service, model=MODEL)
    actuator = make_actuator(
        engine, settings=market_settings, ec2=ec2, replan=planner_replanner(engine, market_settings)
    )
    plan_id, _ = plan_and_store(engine, market_settings, slo_tokens_per_second=SLO, origin="test")
    actuator.apply(plan_id)
    victim = next(iter(replica_rows(engine)))
    refusing["on"] = True  # from now on, spot has no capacity anywhere
    outcome = handle_event(actuator, parse_event(interruption(victim)), channel="api")

    replacement = outcome.replacement
    assert replacement is not None and replacement.launched and replacement.errors
    after = replica_rows(engine)
    replacements = [after[i] for i in outcome_instances(engine, replacement.launched)]
    assert replacements and all(row[2].endswith("/on-demand") for row in replacements)


def outcome_instances(engine: Engine, replica_ids: list[int]) -> list[str]:
    with transaction(engine) as session:
        return list(
            session.scalars(
                sa.select(ReplicaModel.instance_id).where(ReplicaModel.id.in_(replica_ids))
            )
        )


def test_rebalancer_compares_expected_costs_not_list_prices(
    engine: Engine,
    aws: Callable[..., Any],
    seeded: list[tuple[str, str]],
    market_settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    from scheduler.plan_store import get_plan

    actuator, plan_id = _planned_actuator(engine, market_settings, make_actuator)
    actuator.apply(plan_id)
    now = datetime.now(UTC)

    quiet = rebalance(actuator, now=now)

    assert quiet.plan_id is not None and quiet.decision is not None
    stored = get_plan(engine, quiet.plan_id)
    assert stored is not None
    document = stored.document
    list_usd_per_hour = sum(
        a["price_usd_per_hour_each"] * a["count"] for a in document["allocations"]
    )
    # No Advisor band is known for these spot pools, so the planner charges an expected
    # interruption cost on top of the list prices; the rebalancer weighs the same figure.
    assert document["interruption_usd_per_hour"] > 0
    assert quiet.decision.planned_usd_per_hour == pytest.approx(document["cost_usd_per_hour"])
    assert quiet.decision.planned_usd_per_hour > list_usd_per_hour + 1e-9
    # The running fleet is the plan, priced the same way (no switching for what runs).
    assert document["switching_usd_per_hour"] == pytest.approx(0.0)
    assert quiet.decision.current_usd_per_hour == pytest.approx(quiet.decision.planned_usd_per_hour)


def test_a_rebalance_skips_while_another_process_applies(
    engine: Engine,
    aws: Callable[..., Any],
    seeded: list[tuple[str, str]],
    market_settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    from tests.scheduler.hold_apply_lock import apply_lock_held_elsewhere

    actuator, plan_id = _planned_actuator(engine, market_settings, make_actuator)
    actuator.apply(plan_id)
    before = running_by_pool(aws)
    url = engine.url.render_as_string(hide_password=False)
    with apply_lock_held_elsewhere(url, actuator.service):
        skipped = rebalance(actuator, now=datetime.now(UTC))
    assert skipped.to_dict() == {
        "act": False,
        "reason": f"another apply is running for service '{actuator.service}' (the API, "
        "`scheduler apply` or a rebalance); retry when it is done",
    }
    assert running_by_pool(aws) == before
    assert "already matches" in rebalance(actuator, now=datetime.now(UTC)).reason
