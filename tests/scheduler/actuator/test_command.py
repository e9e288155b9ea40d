"""The one executor runs every Command: the SLO it keeps, and a capacity replan for any command
(here a rebalance's), against moto's EC2 and ELBv2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.command import Command
from scheduler.actuator.ec2 import Ec2Adapter
from scheduler.actuator.executor import Actuator
from scheduler.actuator.types import Action
from scheduler.config import Settings
from scheduler.models import ActionModel
from scheduler.plan_store import latest_applied_plan
from tests.scheduler.fleet_helpers import (
    SpotRefused,
    allocation,
    hand_plan,
    live_by_pool,
    running_by_pool,
)


def test_a_command_retires_only_while_the_slo_it_keeps_is_served(
    engine: Engine, network: dict[str, Any], make_actuator: Callable[..., Actuator]
) -> None:
    zone = network["zones"][0]
    actuator = make_actuator(engine)
    plan_id = hand_plan(engine, [allocation(zone, 2)])
    ready = actuator.apply(plan_id).ready  # two replicas of 250 tok/s each
    pool = allocation(zone, 1).pool
    retire = tuple(Action("terminate", pool, "test", replica_id=r) for r in ready)

    held = actuator.execute(
        Command(plan_id, "keep", terminations=retire, slo_tokens_per_second=500)
    )
    assert held.terminated == []
    moved = actuator.execute(
        Command(plan_id, "move", terminations=retire, slo_tokens_per_second=250)
    )
    assert moved.terminated == [ready[0]]  # the second would leave less than 250 tok/s
    assert live_by_pool(engine) == {pool.label: 1}
    with transaction(engine) as session:
        reasons = session.scalars(
            sa.select(ActionModel.reason).where(ActionModel.kind == "terminate")
        ).all()
    assert reasons == ["move: test"]


def test_a_capacity_error_in_any_command_replans_and_marks_the_new_plan(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
) -> None:
    zone = network["zones"][0]
    client = SpotRefused(aws("ec2"), "InsufficientInstanceCapacity", "no capacity")
    actuator = make_actuator(
        engine, ec2=Ec2Adapter(lambda _region: client, settings.service, model="m")
    )
    plan_id = hand_plan(engine, [allocation(zone, 1)])
    launches = tuple(a for a in actuator.plan_actions(plan_id) if a.kind == "launch")

    result = actuator.execute(Command(plan_id, "rebalance", launches=launches))

    assert client.refused == 1 and len(result.capacity_errors) == 1
    assert len(result.replans) == 1 and len(result.ready) == 1 and not result.replan_failed
    assert running_by_pool(aws) == {"us-east-1//g5.xlarge/on-demand": 1}
    applied = latest_applied_plan(engine, actuator.service)
    assert applied is not None and applied.id == result.replans[0]
    with transaction(engine) as session:
        launch_reasons = session.scalars(
            sa.select(ActionModel.reason).where(ActionModel.kind == "launch")
        ).all()
    assert len(launch_reasons) == 2 and all(r.startswith("rebalance: ") for r in launch_reasons)
