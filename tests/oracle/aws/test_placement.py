"""Grouping of comparable types for placement score queries, and the query itself (Stubber:
moto does not implement GetSpotPlacementScores)."""

from __future__ import annotations

from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from oracle.aws.clients import AwsClients
from oracle.aws.instance_types import InstanceTypeSpec
from oracle.aws.placement import (
    MAX_TYPES_PER_QUERY,
    MIN_TYPES_PER_QUERY,
    get_spot_placement_scores,
    group_instance_types,
)

from .conftest import placement_response, stub


def spec(
    name: str, gpu: str, count: int, memory_gib: int, vcpus: int, maker: str = "NVIDIA"
) -> InstanceTypeSpec:
    return InstanceTypeSpec(
        instance_type=name,
        family=name.split(".")[0],
        accelerator_name=gpu,
        accelerator_manufacturer=maker,
        accelerator_count=count,
        accelerator_memory_mib_each=memory_gib * 1024,
        vcpus=vcpus,
        memory_mib=vcpus * 4096,
        architecture="x86_64",
    )


G5 = [
    spec("g5.xlarge", "A10G", 1, 24, 4),
    spec("g5.2xlarge", "A10G", 1, 24, 8),
    spec("g5.4xlarge", "A10G", 1, 24, 16),
    spec("g5.8xlarge", "A10G", 1, 24, 32),
    spec("g5.16xlarge", "A10G", 1, 24, 64),
    spec("g5.12xlarge", "A10G", 4, 24, 48),
    spec("g5.24xlarge", "A10G", 4, 24, 96),
    spec("g5.48xlarge", "A10G", 8, 24, 192),
]


def test_types_with_the_same_gpu_and_count_share_a_query() -> None:
    groups = group_instance_types(G5[:5], types_per_query=3)

    # Five single-A10G types: one query of five (two queries would ask about fewer than three).
    assert groups == [("g5.16xlarge", "g5.2xlarge", "g5.4xlarge", "g5.8xlarge", "g5.xlarge")]


def test_multi_gpu_sizes_fall_back_to_the_same_gpu_model() -> None:
    groups = group_instance_types(G5, types_per_query=3)

    assert ("g5.16xlarge", "g5.2xlarge", "g5.4xlarge", "g5.8xlarge", "g5.xlarge") in groups
    # 4x and 8x A10G are too few per count: they are asked about together, by GPU model.
    assert ("g5.12xlarge", "g5.24xlarge", "g5.48xlarge") in groups
    assert len(groups) == 2


def test_a_lone_type_is_padded_with_the_nearest_in_gpu_memory() -> None:
    specs = [
        *G5[:3],
        spec("p5.48xlarge", "H100", 8, 80, 192),
        spec("p4d.24xlarge", "A100", 8, 40, 96),
        spec("inf2.xlarge", "Inferentia2", 1, 32, 4, maker="AWS"),
    ]

    groups = group_instance_types(specs, types_per_query=3)

    assert ("g5.2xlarge", "g5.4xlarge", "g5.xlarge") in groups
    # H100 x8 (640 GiB) is nearest to A100 x8 (320 GiB), then to the 32 GiB Inferentia2.
    assert all(len(group) == MIN_TYPES_PER_QUERY for group in groups)
    p5 = next(group for group in groups if "p5.48xlarge" in group)
    assert "p4d.24xlarge" in p5
    assert any("inf2.xlarge" in group for group in groups)


def test_three_types_or_fewer_make_one_query() -> None:
    assert group_instance_types(G5[:2]) == [("g5.2xlarge", "g5.xlarge")]
    assert group_instance_types([]) == []


specs_strategy = st.lists(
    st.builds(
        spec,
        name=st.from_regex(r"[a-z]{1,3}[0-9]\.[0-9]{0,2}xlarge", fullmatch=True),
        gpu=st.sampled_from(["A10G", "L4", "H100", "T4", "Trainium"]),
        count=st.sampled_from([1, 2, 4, 8]),
        memory_gib=st.sampled_from([16, 24, 32, 80]),
        vcpus=st.integers(min_value=4, max_value=192),
        maker=st.sampled_from(["NVIDIA", "AWS"]),
    ),
    max_size=40,
    unique_by=lambda item: item.instance_type,
)


@given(specs=specs_strategy, types_per_query=st.integers(min_value=3, max_value=10))
def test_every_type_is_asked_about_in_queries_of_three_to_ten(
    specs: list[InstanceTypeSpec], types_per_query: int
) -> None:
    groups = group_instance_types(specs, types_per_query=types_per_query)

    asked = {name for group in groups for name in group}
    assert asked == {item.instance_type for item in specs}
    for group in groups:
        assert len(set(group)) == len(group)
        assert len(group) <= MAX_TYPES_PER_QUERY
        if len(specs) >= MIN_TYPES_PER_QUERY:
            assert len(group) >= MIN_TYPES_PER_QUERY
    assert groups == group_instance_types(list(reversed(specs)), types_per_query=types_per_query)


def test_scores_at_az_level_and_region_level(aws_clients: AwsClients, stubs: list[Stubber]) -> None:
    client = aws_clients.spot_placement("us-east-1")
    stubber = stub(stubs, client)
    asked = ["g5.2xlarge", "g5.4xlarge", "g5.xlarge"]
    common = {
        "InstanceTypes": asked,
        "TargetCapacity": 4,
        "TargetCapacityUnitType": "units",
        "RegionNames": ["us-east-1"],
    }
    stubber.add_response(
        "get_spot_placement_scores",
        placement_response("us-east-1", {"use1-az1": 9, "use1-az4": 3}),
        {**common, "SingleAvailabilityZone": True},
    )
    stubber.add_response(
        "get_spot_placement_scores",
        placement_response("us-east-1", None),
        {**common, "SingleAvailabilityZone": False},
    )

    by_zone = get_spot_placement_scores(
        client,
        region="us-east-1",
        instance_types=["g5.xlarge", "g5.4xlarge", "g5.2xlarge"],
        target_capacity=4,
        single_availability_zone=True,
    )
    by_region = get_spot_placement_scores(
        client,
        region="us-east-1",
        instance_types=asked,
        target_capacity=4,
        single_availability_zone=False,
    )

    assert {(s.availability_zone_id, s.score) for s in by_zone} == {
        ("use1-az1", 9),
        ("use1-az4", 3),
    }
    assert all(s.instance_types == tuple(asked) for s in by_zone)
    assert [(s.availability_zone_id, s.score, s.target_capacity) for s in by_region] == [
        (None, 7, 4)
    ]
