"""The composition root of the service: the real actuator and the real planner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from oracle.aws.clients import AwsClients
from scheduler.actuator.alb import TargetGroup
from scheduler.actuator.ec2 import Ec2Adapter
from scheduler.actuator.executor import Actuator
from scheduler.actuator.probe import is_ready
from scheduler.config import Settings
from scheduler.services.planning import planner_replanner

if TYPE_CHECKING:
    from scheduler.services.recommendations import Recommended


def aws_clients(settings: Settings) -> AwsClients:
    return AwsClients(
        endpoint_url=settings.service.aws_endpoint_url or None,
        max_attempts=settings.oracle.max_attempts,
    )


def build_actuator(
    engine: Engine, settings: Settings, *, clients: AwsClients | None = None
) -> Actuator:
    clients = clients or aws_clients(settings)
    model = served_model(settings)
    spec = settings.service.spec
    target_group = None
    if settings.service.target_group_arn:
        region = settings.service.target_group_arn.split(":")[3]
        target_group = TargetGroup(
            clients.client("elbv2", region), settings.service.target_group_arn, port=spec.port
        )
    return Actuator(
        engine,
        settings,
        Ec2Adapter(clients.ec2, settings.service, model=model),
        probe=lambda url: is_ready(url, spec, model=model),
        target_group=target_group,
        replan=planner_replanner(engine, settings),
    )


def recommend(engine: Engine, settings: Settings, slo: float, model: str) -> Recommended:
    """The plan for ``slo`` tok/s now (not stored); its ``to_dict()`` is the planner's JSON."""
    from scheduler.planner import make_plan
    from scheduler.services.recommendations import Recommended

    plan = make_plan(engine, config=settings.planner, slo_tokens_per_second=slo, model=model)
    return Recommended(plan)


def served_model(settings: Settings) -> str:
    return settings.service.spec.model or settings.planner.model
