"""A plan in other tools' shapes: EC2 CreateFleet requests and a SkyPilot service YAML."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import yaml

from scheduler.planning.model import Allocation, Plan

#: What the SkyPilot service in the seed blog post serves on, and its readiness probe.
SKYPILOT_PORT = 8081
READINESS_MESSAGE = "Hello! What is your name?"
#: The label (EC2 tag) that names the workload buckets a replica serves, in a mix plan.
ROUTE_LABEL = "spot-scheduler/buckets"
TAG_VALUE_MAX = 256


def fleet_requests(
    plan: Plan, *, launch_template_name: str = "spot-scheduler-vllm"
) -> list[dict[str, Any]]:
    """One EC2 CreateFleet request per region (a fleet is regional).

    Capacity is counted in tok/s: each override's ``WeightedCapacity`` is the instance type's
    goodput, and the target is the planned throughput of the region, split into spot and
    on-demand as planned. Overrides name the AZ of each spot pool; on-demand overrides leave
    the AZ to EC2. ``SubnetId`` is left out: the launch template (or the actuator) supplies the
    subnet of each AZ.

    A plan for a request mix tags each fleet with its workload and, per instance type of the
    region, the buckets that type serves (``spot-scheduler:route:TYPE`` = ``BUCKET=TOK/S ...``),
    which a router in front of the fleet reads.
    """
    by_region: dict[str, list[Allocation]] = defaultdict(list)
    for allocation in plan.allocations:
        by_region[allocation.pool.region].append(allocation)
    requests = []
    for region, allocations in sorted(by_region.items()):
        spot = sum(a.count * a.tokens_per_second_each for a in allocations if _is_spot(a))
        on_demand = sum(a.count * a.tokens_per_second_each for a in allocations if not _is_spot(a))
        overrides = []
        for allocation in allocations:
            override: dict[str, Any] = {
                "InstanceType": allocation.pool.instance_type,
                "WeightedCapacity": round(allocation.tokens_per_second_each, 3),
            }
            if allocation.availability_zone:
                override["AvailabilityZone"] = allocation.availability_zone
            if allocation.pool.market == "spot":
                override["MaxPrice"] = f"{allocation.price_usd_per_hour_each:.4f}"
            overrides.append(override)
        requests.append(
            {
                "Region": region,
                "Type": "maintain",
                "LaunchTemplateConfigs": [
                    {
                        "LaunchTemplateSpecification": {
                            "LaunchTemplateName": launch_template_name,
                            "Version": "$Default",
                        },
                        "Overrides": overrides,
                    }
                ],
                "TargetCapacitySpecification": {
                    "TotalTargetCapacity": math.ceil(spot + on_demand),
                    "OnDemandTargetCapacity": math.ceil(on_demand),
                    "SpotTargetCapacity": math.floor(spot),
                    "DefaultTargetCapacityType": "spot" if spot else "on-demand",
                    "TargetCapacityUnitType": "units",
                },
                "SpotOptions": {"AllocationStrategy": "price-capacity-optimized"},
                "OnDemandOptions": {"AllocationStrategy": "lowest-price"},
                "TagSpecifications": [
                    {
                        "ResourceType": "fleet",
                        "Tags": [
                            {"Key": "spot-scheduler:model", "Value": plan.model},
                            {
                                "Key": "spot-scheduler:slo-tokens-per-second",
                                "Value": f"{plan.slo_tokens_per_second:g}",
                            },
                            *_route_tags(plan, allocations),
                        ],
                    }
                ],
            }
        )
    return requests


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
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _is_spot(allocation: Allocation) -> bool:
    return allocation.pool.market == "spot"


def _route_tags(plan: Plan, allocations: list[Allocation]) -> list[dict[str, str]]:
    """Workload and per-type routing tags of one region's fleet (none without a mix)."""
    if plan.workload is None:
        return []
    per_type: dict[str, dict[str, float]] = defaultdict(dict)
    for allocation in allocations:
        routes = per_type[allocation.pool.instance_type]
        for bucket, tokens_per_second in allocation.buckets.items():
            routes[bucket] = routes.get(bucket, 0.0) + tokens_per_second
    tags = [{"Key": "spot-scheduler:workload", "Value": _tag_value(plan.workload["workload_id"])}]
    for instance_type, routes in sorted(per_type.items()):
        value = " ".join(f"{bucket}={tps:.0f}" for bucket, tps in routes.items())
        tags.append({"Key": f"spot-scheduler:route:{instance_type}", "Value": _tag_value(value)})
    return tags


def _routes(allocation: Allocation) -> str:
    if not allocation.buckets:
        return "no bucket"
    return ", ".join(f"{bucket} {tps:,.0f} tok/s" for bucket, tps in allocation.buckets.items())


def _tag_value(value: str) -> str:
    # EC2 tag values hold at most 256 characters.
    return value[:TAG_VALUE_MAX]
