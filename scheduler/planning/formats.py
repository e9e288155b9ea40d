"""A plan in other tools' shapes: EC2 CreateFleet requests and a SkyPilot service YAML."""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml

from scheduler.planning.model import Allocation, Plan

#: What the SkyPilot service in the seed blog post serves on, and its readiness probe.
SKYPILOT_PORT = 8081
READINESS_MESSAGE = "Hello! What is your name?"
#: The label (EC2 tag) that names the workload buckets a replica serves, in a mix plan.
ROUTE_LABEL = "spot-scheduler/buckets"
#: EC2 tag values hold at most 256 characters.
TAG_VALUE_MAX = 256


def fleet_requests(
    plan: Plan, *, launch_template_name: str = "spot-scheduler-vllm"
) -> list[dict[str, Any]]:
    """One EC2 CreateFleet request per planned pool, each exactly the input of
    ``aws ec2 create-fleet --region REGION --cli-input-json``: see :func:`fleet_export`.

    Each request names one pool: one instance type, one market and, for spot, one AZ, so that
    EC2 Fleet cannot put two pools' instances in one zone and break the hedge. Capacity is
    counted in instances (``WeightedCapacity`` 1), so the target is the plan's count and EC2
    Fleet's fill rule (launch until the weights reach the target) launches exactly that many.
    ``SubnetId`` is left out: the launch template (or the actuator) supplies the subnet of each
    AZ; an on-demand pool leaves the AZ to EC2.

    A plan for a request mix also tags each fleet with the workload and the buckets its pool
    serves (``spot-scheduler:workload``, ``spot-scheduler:buckets`` = ``BUCKET=TOK/S ...``), for
    the router in front of the fleet.
    """
    return [
        entry["request"] for entry in fleet_export(plan, launch_template_name=launch_template_name)
    ]


def fleet_export(
    plan: Plan, *, launch_template_name: str = "spot-scheduler-vllm"
) -> list[dict[str, Any]]:
    """The fleet export of ``scheduler plan --format fleet``: per pool with instances, its
    ``region``, ``availability_zone``, ``instance_type``, ``market``, ``count``, the CreateFleet
    ``request`` and ``aws_cli``, the command that creates it as printed (a fleet is regional,
    and the region is not part of the request: the AWS CLI refuses unknown keys)."""
    entries = []
    for allocation in sorted(plan.allocations, key=lambda a: a.pool):
        if allocation.count <= 0:
            continue
        request = _fleet_request(plan, allocation, launch_template_name)
        entries.append(
            {
                "region": allocation.pool.region,
                "availability_zone": allocation.availability_zone,
                "instance_type": allocation.pool.instance_type,
                "market": allocation.pool.market,
                "count": allocation.count,
                "request": request,
                "aws_cli": "aws ec2 create-fleet --region "
                f"{shlex.quote(allocation.pool.region)} --cli-input-json "
                + shlex.quote(json.dumps(request, separators=(",", ":"))),
            }
        )
    return entries


def _fleet_request(plan: Plan, allocation: Allocation, launch_template_name: str) -> dict[str, Any]:
    spot = _is_spot(allocation)
    override: dict[str, Any] = {
        "InstanceType": allocation.pool.instance_type,
        "WeightedCapacity": 1.0,  # one unit per instance: the target is the instance count
    }
    if allocation.availability_zone:
        override["AvailabilityZone"] = allocation.availability_zone
    # No MaxPrice: it would default to the on-demand price, and a cap at the planned spot
    # price would leave the pool empty at the first rise (AWS advises against setting it).
    count = allocation.count
    request: dict[str, Any] = {
        "Type": "maintain",
        "LaunchTemplateConfigs": [
            {
                "LaunchTemplateSpecification": {
                    "LaunchTemplateName": launch_template_name,
                    "Version": "$Default",
                },
                "Overrides": [override],
            }
        ],
        "TargetCapacitySpecification": {
            "TotalTargetCapacity": count,
            "OnDemandTargetCapacity": 0 if spot else count,
            "SpotTargetCapacity": count if spot else 0,
            "DefaultTargetCapacityType": "spot" if spot else "on-demand",
        },
        "TagSpecifications": [
            {
                "ResourceType": "fleet",
                "Tags": [
                    {"Key": "spot-scheduler:model", "Value": plan.model},
                    {
                        "Key": "spot-scheduler:slo-tokens-per-second",
                        "Value": f"{plan.slo_tokens_per_second:g}",
                    },
                    {"Key": "spot-scheduler:pool", "Value": "/".join(allocation.pool)},
                    *_route_tags(plan, allocation),
                ],
            }
        ],
    }
    if spot:
        request["SpotOptions"] = {"AllocationStrategy": "price-capacity-optimized"}
    else:
        request["OnDemandOptions"] = {"AllocationStrategy": "lowest-price"}
    return request


def skypilot_yaml(plan: Plan) -> str:
    """A SkyPilot service YAML in the shape of the seed's ``sky serve`` example: a service with a
    readiness probe that POSTs a one-token chat completion, replicas, and resources whose
    ``any_of`` lists the chosen pools (``use_spot`` per candidate)."""
    candidates = []
    seen = set()
    for allocation in plan.allocations:
        key = (
            allocation.pool.region,
            allocation.availability_zone,
            allocation.pool.instance_type,
            allocation.pool.market,
        )
        if key in seen:
            continue
        seen.add(key)
        candidate: dict[str, Any] = {
            "cloud": "aws",
            "region": allocation.pool.region,
            "instance_type": allocation.pool.instance_type,
            "use_spot": allocation.pool.market == "spot",
        }
        if allocation.availability_zone:
            candidate["zone"] = allocation.availability_zone
        if allocation.buckets:
            # A label (an EC2 tag on AWS) per replica: the workload buckets a router sends it.
            candidate["labels"] = {ROUTE_LABEL: _tag_value(" ".join(allocation.buckets))}
        candidates.append(candidate)
    replicas = sum(a.count for a in plan.allocations)
    document = {
        "envs": {"MODEL_NAME": plan.model},
        "service": {
            "readiness_probe": {
                "path": "/v1/chat/completions",
                "post_data": {
                    "model": "$MODEL_NAME",
                    "messages": [{"role": "user", "content": READINESS_MESSAGE}],
                    "max_tokens": 1,
                },
            },
            "replicas": replicas,
        },
        "resources": {
            "ports": SKYPILOT_PORT,
            "disk_size": 512,
            "any_of": candidates,
        },
        "run": (
            "vllm serve $MODEL_NAME --host 0.0.0.0 --port "
            f"{SKYPILOT_PORT} --tensor-parallel-size $SKYPILOT_NUM_GPUS_PER_NODE"
        ),
    }
    header = (
        f"# {plan.model} at {plan.slo_tokens_per_second:g} tok/s: {replicas} replicas, "
        f"${plan.cost_usd_per_hour:,.2f}/h expected (scheduler plan, data as of "
        f"{plan.as_of.isoformat()}).\n"
        "# SkyPilot spreads replicas over the candidates by its own policy; the planned counts\n"
        "# per pool are in `scheduler plan --format json`.\n"
    )
    if plan.workload is not None:
        header += (
            f"# Workload {plan.workload['workload_id']}: route by request size "
            f"(label {ROUTE_LABEL}):\n"
        )
        for allocation in plan.allocations:
            header += (
                f"#   {allocation.pool.instance_type} {allocation.pool.market} in "
                f"{allocation.availability_zone or allocation.pool.region} x{allocation.count}: "
                f"{_routes(allocation)}\n"
            )
    return header + str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def _is_spot(allocation: Allocation) -> bool:
    return allocation.pool.market == "spot"


def _route_tags(plan: Plan, allocation: Allocation) -> list[dict[str, str]]:
    """The workload and the buckets this pool serves, as fleet tags (none without a mix)."""
    if plan.workload is None:
        return []
    routes = " ".join(f"{bucket}={tps:.0f}" for bucket, tps in allocation.buckets.items())
    return [
        {"Key": "spot-scheduler:workload", "Value": _tag_value(plan.workload["workload_id"])},
        {"Key": "spot-scheduler:buckets", "Value": _tag_value(routes or "none")},
    ]


def _routes(allocation: Allocation) -> str:
    if not allocation.buckets:
        return "no bucket"
    return ", ".join(f"{bucket} {tps:,.0f} tok/s" for bucket, tps in allocation.buckets.items())


def _tag_value(value: str) -> str:
    return value[:TAG_VALUE_MAX]
