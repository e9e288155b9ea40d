"""Kill the actuator mid-apply, restart: no orphan instance and no double launch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator.ec2 import TAG_SERVICE, TAG_TOKEN
from scheduler.actuator.executor import Actuator
from scheduler.actuator.reconcile import reconcile
from scheduler.models import LIVE_STATES, ReplicaModel
from tests.scheduler.fleet_helpers import allocation, hand_plan, running_by_pool, wanted_by_pool

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("point", ["after-call", "before-call"])
def test_kill_mid_apply_then_restart_leaves_no_orphan_and_no_duplicate(
    engine: Engine,
    database_url: str,
    moto_url: str,
    aws: Callable[..., Any],
    network: dict[str, Any],
    make_actuator: Callable[..., Actuator],
    point: str,
) -> None:
    zones = network["zones"]
    plan = [allocation(zones[0], 2), allocation(zones[1], 2)]
    plan_id = hand_plan(engine, plan)
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.scheduler.actuator.crash_apply",
            database_url,
            moto_url,
            str(plan_id),
            json.dumps(network["subnets"]),
            network["image"],
            "3",
            point,
        ],
        cwd=REPO_ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    launched_before_restart = sum(running_by_pool(aws).values())
    assert launched_before_restart == (3 if point == "after-call" else 2)

    # Restart: reconcile (as on start), then apply the same plan again.
    actuator = make_actuator(engine)
    report = reconcile(actuator, grace_s=0)
    if point == "after-call":
        assert len(report.adopted) == 1 and report.failed == []
    else:
        assert report.adopted == [] and len(report.failed) == 1
    assert report.orphans_terminated == []
    actuator.apply(plan_id)

    assert running_by_pool(aws) == wanted_by_pool(plan)
    instances = [
        i
        for r in aws("ec2").describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] in ("pending", "running")
    ]
    with transaction(engine) as session:
        live = session.scalars(
            sa.select(ReplicaModel).where(ReplicaModel.state.in_(LIVE_STATES))
        ).all()
        owned = {r.instance_id for r in live}
    assert owned == {i["InstanceId"] for i in instances}  # every instance is owned: no orphan
    assert len(owned) == 4  # and launched once: no duplicate


def test_an_untracked_instance_tagged_with_the_service_is_terminated(
    engine: Engine,
    aws: Callable[..., Any],
    network: dict[str, Any],
    make_actuator: Callable[..., Actuator],
) -> None:
    zones = network["zones"]
    actuator = make_actuator(engine)
    actuator.apply(hand_plan(engine, [allocation(zones[0], 1)]))
    stray = aws("ec2").run_instances(
        ImageId=network["image"],
        MinCount=1,
        MaxCount=1,
        InstanceType="g5.xlarge",
        SubnetId=network["subnets"][zones[0][1]],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": TAG_SERVICE, "Value": "llm-test"},
                    {"Key": TAG_TOKEN, "Value": "lost"},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    report = reconcile(actuator, grace_s=0)
    assert report.orphans_terminated == [stray]
    assert sum(running_by_pool(aws).values()) == 1
