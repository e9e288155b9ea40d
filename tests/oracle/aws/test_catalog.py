"""Regions, AZs, instance types and offerings, through boto3 against moto's server."""

from __future__ import annotations

from oracle.aws import instance_types, regions
from oracle.aws.clients import AwsClients

from .conftest import TYPES


def test_regions_lists_enabled_and_opt_in_regions(aws_clients: AwsClients) -> None:
    listed = {info.region: info for info in regions.describe_regions(aws_clients.ec2("us-east-1"))}

    assert listed["us-east-1"].enabled
    assert listed["eu-west-1"].enabled
    # ap-east-1 (Hong Kong) is an opt-in region, not enabled for a new account.
    assert not listed["ap-east-1"].enabled


def test_availability_zones_map_names_to_real_ids(aws_clients: AwsClients) -> None:
    zones = regions.describe_availability_zones(aws_clients.ec2("us-east-1"), "us-east-1")

    ids = {zone.zone_name: zone.zone_id for zone in zones}
    assert ids["us-east-1a"].startswith("use1-az")
    assert len(set(ids.values())) == len(ids) >= 6
    assert {zone.region for zone in zones} == {"us-east-1"}


def test_accelerated_types_keep_gpu_and_neuron_types_only(aws_clients: AwsClients) -> None:
    specs = instance_types.describe_accelerated_types(aws_clients.ec2("us-east-1"))

    by_name = {spec.instance_type: spec for spec in specs}
    assert "m5.large" not in by_name
    g5 = by_name["g5.12xlarge"]
    assert (g5.accelerator_name, g5.accelerator_manufacturer) == ("A10G", "NVIDIA")
    assert g5.accelerator_count == 4
    assert g5.accelerator_memory_mib_each > 20000
    assert g5.vcpus == 48
    assert g5.family == "g5"
    assert by_name["inf2.xlarge"].accelerator_name == "Inferentia2"
    assert by_name["p5.48xlarge"].accelerator_count == 8


def test_accelerated_types_can_be_narrowed_and_ignore_unknown_names(
    aws_clients: AwsClients,
) -> None:
    specs = instance_types.describe_accelerated_types(
        aws_clients.ec2("us-east-1"), instance_types=["g5.xlarge", "m5.large", "zz9.huge"]
    )

    assert [spec.instance_type for spec in specs] == ["g5.xlarge"]


def test_offerings_carry_both_az_name_and_az_id(aws_clients: AwsClients) -> None:
    ec2 = aws_clients.ec2("us-east-1")
    zone_ids = {
        zone.zone_name: zone.zone_id
        for zone in regions.describe_availability_zones(ec2, "us-east-1")
    }

    offerings = instance_types.describe_offerings(ec2, instance_types=TYPES, zone_ids=zone_ids)

    assert {offer.instance_type for offer in offerings} == set(TYPES)
    for offer in offerings:
        assert offer.availability_zone is not None
        assert zone_ids[offer.availability_zone] == offer.availability_zone_id
    # The g5.xlarge is offered in some AZs of us-east-1, not in every one.
    g5_zones = {
        offer.availability_zone for offer in offerings if offer.instance_type == "g5.xlarge"
    }
    assert 0 < len(g5_zones) <= len(zone_ids)


def test_parse_instance_type_reads_inference_accelerators() -> None:
    item = {
        "InstanceType": "inf1.xlarge",
        "VCpuInfo": {"DefaultVCpus": 4},
        "MemoryInfo": {"SizeInMiB": 8192},
        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
        "InferenceAcceleratorInfo": {
            "Accelerators": [{"Count": 1, "Name": "Inferentia", "Manufacturer": "AWS"}],
            "TotalInferenceMemoryInMiB": 8192,
        },
    }

    spec = instance_types.parse_instance_type(item)

    assert spec is not None
    assert (spec.accelerator_name, spec.accelerator_count) == ("Inferentia", 1)
    assert spec.accelerator_memory_mib_each == 8192
    assert instance_types.parse_instance_type({"InstanceType": "m5.large"}) is None
