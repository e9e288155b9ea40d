"""The EC2 adapter: the only EC2 calls the actuator makes (launch, terminate, describe by tag).

Launches carry an idempotency ``ClientToken`` and tags naming the service, plan, pool, replica
and token, so that the fleet can be rebuilt from EC2 alone (see reconcile).
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from oracle.errors import InputError
from scheduler.actuator.aws import Ec2Api
from scheduler.actuator.types import Pool
from scheduler.config import ServiceConfig

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import (
        FilterTypeDef,
        FleetLaunchTemplateOverridesRequestTypeDef,
        InstanceTypeDef,
        TagTypeDef,
    )

TAG_SERVICE = "scheduler:service"
TAG_PLAN = "scheduler:plan"
TAG_POOL = "scheduler:pool"
TAG_REPLICA = "scheduler:replica"
TAG_TOKEN = "scheduler:client-token"

#: Error codes that say "this pool has no capacity for now" (EC2 API error code reference).
CAPACITY_ERROR_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "UnfulfillableCapacity",
        "SpotMaxPriceTooLow",
        "Unsupported",
    }
)
#: Error codes that say "the account may not launch more here" (spot and vCPU quotas).
QUOTA_ERROR_CODES = frozenset(
    {"MaxSpotInstanceCountExceeded", "VcpuLimitExceeded", "InstanceLimitExceeded"}
)

#: The EC2 client of a region.
ClientFor = Callable[[str], Ec2Api]


def check_launch_config(service: ServiceConfig) -> None:
    """Refuse, before anything is launched, a spec that EC2 could not launch from."""
    spec = service.spec
    if service.launch_api == "create-fleet" and not spec.launch_template_id:
        raise InputError(
            "service.launch_api = 'create-fleet' needs service.spec.launch_template_id; set it "
            "in config.toml or use launch_api = 'run-instances'"
        )
    if not spec.image_id and not spec.launch_template_id:
        raise InputError(
            "no AMI to launch: set service.spec.image_id or service.spec.launch_template_id "
            "in config.toml"
        )


class CapacityError(Exception):
    """EC2 refused a launch for capacity or quota reasons; the pool should be left out."""

    def __init__(self, pool: Pool, code: str, message: str) -> None:
        super().__init__(f"{pool.label}: {code}: {message}")
        self.pool = pool
        self.code = code


@dataclass(frozen=True)
class LaunchRequest:
    pool: Pool
    availability_zone: str | None
    client_token: str
    tags: dict[str, str]
    availability_zone_id: str | None = None


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    region: str
    state: str
    tags: dict[str, str] = field(default_factory=dict)
    private_ip: str | None = None
    public_ip: str | None = None
    launch_time: datetime | None = None
    #: EC2's reason code when the instance stopped or ended ("Server.SpotInstanceTermination").
    state_reason: str = ""

    @property
    def client_token(self) -> str | None:
        return self.tags.get(TAG_TOKEN)


class Ec2Adapter:
    """Launch, terminate and list the service's instances, one boto3 EC2 client per region."""

    def __init__(self, client_for: ClientFor, service: ServiceConfig, *, model: str) -> None:
        self._client_for = client_for
        self._service = service
        self._model = model

    def launch(self, request: LaunchRequest) -> str:
        """Launch one instance; return its ID. Raises :class:`CapacityError` when EC2 says the
        pool is out of capacity or the account out of quota."""
        client = self._client_for(request.pool.region)
        try:
            if self._service.launch_api == "create-fleet":
                return self._create_fleet(client, request)
            return self._run_instances(client, request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in CAPACITY_ERROR_CODES or code in QUOTA_ERROR_CODES:
                message = error.response.get("Error", {}).get("Message", "")
                raise CapacityError(request.pool, code, message) from error
            raise

    def terminate(self, region: str, instance_ids: Iterable[str]) -> None:
        ids = list(instance_ids)
        if ids:
            self._client_for(region).terminate_instances(InstanceIds=ids)

    def describe_managed(self, regions: Iterable[str]) -> list[InstanceInfo]:
        """Every instance tagged with this service, in any state, in ``regions``."""
        found: list[InstanceInfo] = []
        for region in sorted(set(regions)):
            paginator = self._client_for(region).get_paginator("describe_instances")
            filters: list[FilterTypeDef] = [
                {"Name": f"tag:{TAG_SERVICE}", "Values": [self._service.name]}
            ]
            for page in paginator.paginate(Filters=filters):
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        found.append(_info(region, instance))
        return found

    def _run_instances(self, client: Ec2Api, request: LaunchRequest) -> str:
        params = self._common_params(request)
        params.update(MinCount=1, MaxCount=1, ClientToken=request.client_token)
        params["InstanceType"] = request.pool.instance_type
        if request.pool.market == "spot":
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        subnet = self._subnet(request)
        if subnet:
            params["SubnetId"] = subnet
        elif request.availability_zone:
            params["Placement"] = {"AvailabilityZone": request.availability_zone}
        response = client.run_instances(**params)
        return str(response["Instances"][0]["InstanceId"])

    def _create_fleet(self, client: Ec2Api, request: LaunchRequest) -> str:
        spec = self._service.spec
        override: FleetLaunchTemplateOverridesRequestTypeDef = {
            # Our instance types are plain strings, not the stub's Literal of every type.
            "InstanceType": request.pool.instance_type  # type: ignore[typeddict-item]
        }
        subnet = self._subnet(request)
        if subnet:  # moto and real fleets honour SubnetId; an AZ override alone is ignored
            override["SubnetId"] = subnet
        elif request.availability_zone:
            override["AvailabilityZone"] = request.availability_zone
        capacity_type: Literal["spot", "on-demand"] = (
            "spot" if request.pool.market == "spot" else "on-demand"
        )
        response = client.create_fleet(
            Type="instant",
            ClientToken=request.client_token,
            LaunchTemplateConfigs=[
                {
                    "LaunchTemplateSpecification": {
                        "LaunchTemplateId": spec.launch_template_id,
                        "Version": spec.launch_template_version,
                    },
                    "Overrides": [override],
                }
            ],
            TargetCapacitySpecification={
                "TotalTargetCapacity": 1,
                "DefaultTargetCapacityType": capacity_type,
            },
            TagSpecifications=[{"ResourceType": "instance", "Tags": _tag_list(request.tags)}],
        )
        for instance in response.get("Instances", []):
            ids = instance.get("InstanceIds", [])
            if ids:
                return str(ids[0])
        errors = response.get("Errors", [])
        code = errors[0].get("ErrorCode", "") if errors else "UnfulfillableCapacity"
        message = errors[0].get("ErrorMessage", "") if errors else "no instance launched"
        raise ClientError({"Error": {"Code": code, "Message": message}}, "CreateFleet")

    def _common_params(self, request: LaunchRequest) -> dict[str, Any]:
        spec = self._service.spec
        params: dict[str, Any] = {
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tag_list(request.tags)},
                {"ResourceType": "volume", "Tags": _tag_list(request.tags)},
            ],
            "UserData": base64.b64encode(self._user_data().encode()).decode(),
        }
        if spec.launch_template_id:
            params["LaunchTemplate"] = {
                "LaunchTemplateId": spec.launch_template_id,
                "Version": spec.launch_template_version,
            }
        if spec.image_id:
            params["ImageId"] = spec.image_id
            params["BlockDeviceMappings"] = [
                {
                    "DeviceName": "/dev/sda1",
                    "Ebs": {"VolumeSize": spec.disk_size_gb, "VolumeType": "gp3"},
                }
            ]
        if spec.security_group_ids:
            params["SecurityGroupIds"] = list(spec.security_group_ids)
        if spec.instance_profile_arn:
            params["IamInstanceProfile"] = {"Arn": spec.instance_profile_arn}
        if spec.key_name:
            params["KeyName"] = spec.key_name
        return params

    def _subnet(self, request: LaunchRequest) -> str | None:
        """The subnet of the pool's zone; for a region-level (on-demand) pool, the AZ hint's, or
        one of the region's subnets chosen by the client token (which spreads launches)."""
        subnets = self._service.spec.subnets
        for key in (request.pool.zone, request.availability_zone_id, request.availability_zone):
            if key and key in subnets:
                return subnets[key]
        if request.pool.zone or not subnets:
            return None
        region = request.pool.region
        keys = sorted(k for k in subnets if k.startswith(region)) or sorted(subnets)
        return subnets[keys[int(request.client_token, 16) % len(keys)]]

    def _user_data(self) -> str:
        spec = self._service.spec
        command = ["vllm", "serve", self._model, "--port", str(spec.port), *spec.vllm_args]
        return "#!/bin/bash\n" + shlex.join(command) + "\n"


def _tag_list(tags: dict[str, str]) -> list[TagTypeDef]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _info(region: str, instance: InstanceTypeDef) -> InstanceInfo:
    return InstanceInfo(
        instance_id=instance["InstanceId"],
        region=region,
        state=instance.get("State", {}).get("Name", ""),
        tags={tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])},
        private_ip=instance.get("PrivateIpAddress"),
        public_ip=instance.get("PublicIpAddress"),
        launch_time=instance.get("LaunchTime"),
        state_reason=instance.get("StateReason", {}).get("Code", ""),
    )
