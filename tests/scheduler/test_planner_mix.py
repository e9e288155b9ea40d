"""Planning for a request mix: each bucket routed to the type that serves it cheapest, the hedge
for the whole mix, the routing in the JSON, the fleet export and the SkyPilot YAML, and the
single-number answer unchanged without a mix."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
import yaml

from oracle.goodput import GoodputFact
from scheduler.config import PlannerConfig
from scheduler.planner import InfeasiblePlanError, plan_from_data
from scheduler.planning.candidates import PlanningData
from scheduler.planning.formats import ROUTE_LABEL, fleet_requests, skypilot_yaml
from scheduler.planning.mix import WorkloadMix, type_facts
from tests.scheduler.planning_data import AS_OF, MODEL, data, spot

SHORT, LONG = "in0-512.out0-128", "in2048-8192.out0-128"
#: g5 is fast on short requests and slow on long ones; g6e the other way round (per dollar).
PER_BUCKET = {
    "g5.xlarge": {SHORT: 800.0, LONG: 100.0},
    "g6e.xlarge": {SHORT: 900.0, LONG: 700.0},
}


def fact(instance_type: str, bucket: str, value: float) -> GoodputFact:
    return GoodputFact(
        model=MODEL,
        instance_type=instance_type,
        goodput_tokens_per_second=value,
        source="measured",
        source_detail="test",
        observed_at=AS_OF - timedelta(days=1),
        gpu_count=1,
        tensor_parallel=1,
        workload_id="two",
        run_id=1,
        bucket=bucket,
    )


def mix(shares: tuple[float, float] = (0.5, 0.5)) -> WorkloadMix:
    return WorkloadMix(
        workload_id="two",
        source="test",
        bucket_names=(SHORT, LONG),
        shares=shares,
        facts={
            t: {b: fact(t, b, v) for b, v in buckets.items()} for t, buckets in PER_BUCKET.items()
        },
    )


def market(workload: WorkloadMix | None) -> PlanningData:
    base = data(
        [
            spot("use1-az1", "g5.xlarge", 0.40),
            spot("use1-az2", "g5.xlarge", 0.40),
            spot("use1-az1", "g6e.xlarge", 0.80),
            spot("use1-az2", "g6e.xlarge", 0.80),
        ],
        offers=[],
    )
    if workload is None:
        return base
    return dataclasses.replace(base, goodput=type_facts(workload), mix=workload)


CONFIG = PlannerConfig(max_pool_share=1.0, headroom_fraction=0.0)


def test_each_bucket_goes_to_the_type_that_serves_it_and_the_hedge_holds_for_the_mix() -> None:
    plan = plan_from_data(market(mix()), config=CONFIG, slo_tokens_per_second=1200)
    # 600 tok/s of short requests and 600 of long ones, from either AZ alone: one g5 (0.75 of
    # it for the short ones) and one g6e (0.86 for the long ones) in each, $2.40/h; g6e alone
    # needs two per AZ (600/900 + 600/700 = 1.52), $3.20/h.
    counts = {(a.pool.zone, a.pool.instance_type): a.count for a in plan.allocations}
    assert counts == {
        ("use1-az1", "g5.xlarge"): 1,
        ("use1-az2", "g5.xlarge"): 1,
        ("use1-az1", "g6e.xlarge"): 1,
        ("use1-az2", "g6e.xlarge"): 1,
    }
    assert plan.cost_usd_per_hour == pytest.approx(2.40, rel=1e-3)
    for allocation in plan.allocations:
        served = set(allocation.buckets)
        assert served == ({SHORT} if allocation.pool.instance_type == "g5.xlarge" else {LONG})
    assert sum(a.buckets.get(SHORT, 0) for a in plan.allocations) == pytest.approx(600)
    assert plan.tokens_per_second >= 1200
    assert plan.tokens_per_second_after_worst_loss >= 1200
    payload = plan.to_dict()
    assert payload["workload"] == {
        "workload_id": "two",
        "source": "test",
        "buckets": {SHORT: 0.5, LONG: 0.5},
    }
    assert all("buckets" in allocation for allocation in payload["allocations"])


def test_the_mix_plan_beats_one_number_per_type() -> None:
    workload = mix()
    single = dataclasses.replace(
        market(None),
        goodput={
            t: dataclasses.replace(f, goodput_tokens_per_second=workload.rate_alone(t), bucket="")
            for t, f in type_facts(workload).items()
        },
    )
    one_number = plan_from_data(single, config=CONFIG, slo_tokens_per_second=1200)
    mixed = plan_from_data(market(workload), config=CONFIG, slo_tokens_per_second=1200)
    assert one_number.cost_usd_per_hour == pytest.approx(3.20, rel=1e-3)
    assert mixed.cost_usd_per_hour == pytest.approx(2.40, rel=1e-3)
    # g5 serves the half-long mix alone at 1 / (0.5/800 + 0.5/100) = 178 tok/s, g6e at 785.
    assert workload.rate_alone("g5.xlarge") == pytest.approx(1 / (0.5 / 800 + 0.5 / 100))


def test_without_a_mix_the_answer_and_its_json_keys_are_unchanged() -> None:
    plan = plan_from_data(market(None), config=CONFIG, slo_tokens_per_second=600)
    payload = plan.to_dict()
    assert "workload" not in payload
    assert all("buckets" not in allocation for allocation in payload["allocations"])
    assert all(not a.buckets for a in plan.allocations)


def test_fleet_export_and_skypilot_yaml_carry_the_routing() -> None:
    plan = plan_from_data(market(mix()), config=CONFIG, slo_tokens_per_second=1200)
    requests = fleet_requests(plan)
    assert len(requests) == 4  # one per pool
    pools = sorted(plan.allocations, key=lambda a: a.pool)
    for request, allocation in zip(requests, pools, strict=True):
        tags = {t["Key"]: t["Value"] for t in request["TagSpecifications"][0]["Tags"]}
        assert tags["spot-scheduler:workload"] == "two"
        bucket = SHORT if allocation.pool.instance_type == "g5.xlarge" else LONG
        assert tags["spot-scheduler:buckets"].startswith(f"{bucket}=")
    text = skypilot_yaml(plan)
    document = yaml.safe_load(text)
    labels = {c["instance_type"]: c["labels"][ROUTE_LABEL] for c in document["resources"]["any_of"]}
    assert labels == {"g5.xlarge": SHORT, "g6e.xlarge": LONG}
    assert "# Workload two: route by request size" in text
    single = plan_from_data(market(None), config=CONFIG, slo_tokens_per_second=600)
    for plain in fleet_requests(single):
        keys = {t["Key"] for t in plain["TagSpecifications"][0]["Tags"]}
        assert "spot-scheduler:buckets" not in keys and "spot-scheduler:workload" not in keys
    assert "labels" not in skypilot_yaml(single)


def test_a_bucket_no_type_serves_is_a_clear_error() -> None:
    unserved = "in8192+.out512+"
    workload = dataclasses.replace(
        mix(), bucket_names=(SHORT, LONG, unserved), shares=(0.4, 0.4, 0.2)
    )
    with pytest.raises(InfeasiblePlanError, match=re.escape(f"no candidate serves {unserved}")):
        plan_from_data(market(workload), config=CONFIG, slo_tokens_per_second=600)
