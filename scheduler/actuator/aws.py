"""The narrow interfaces of the AWS calls the service makes: EC2 (launch, terminate, describe
by tag), SQS (the EventBridge queue) and ELBv2 (the target group).

A boto3 client of each service satisfies its protocol; the signatures are those of the
mypy-boto3 stubs (a development dependency, so they are imported for type checking only).
Tests pass moto-backed clients or fakes with the same methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from typing import Unpack

    from mypy_boto3_ec2.paginator import DescribeInstancesPaginator
    from mypy_boto3_ec2.type_defs import (
        CreateFleetRequestTypeDef,
        CreateFleetResultTypeDef,
        ReservationResponseTypeDef,
        RunInstancesRequestTypeDef,
        TerminateInstancesRequestTypeDef,
        TerminateInstancesResultTypeDef,
    )
    from mypy_boto3_elbv2.type_defs import (
        DeregisterTargetsInputTypeDef,
        DescribeTargetHealthInputTypeDef,
        DescribeTargetHealthOutputTypeDef,
        RegisterTargetsInputTypeDef,
    )
    from mypy_boto3_sqs.type_defs import (
        DeleteMessageRequestTypeDef,
        EmptyResponseMetadataTypeDef,
        ReceiveMessageRequestTypeDef,
        ReceiveMessageResultTypeDef,
    )


class Ec2Api(Protocol):
    """The EC2 calls of :class:`scheduler.actuator.ec2.Ec2Adapter`."""

    def run_instances(
        self, **kwargs: Unpack[RunInstancesRequestTypeDef]
    ) -> ReservationResponseTypeDef: ...

    def create_fleet(
        self, **kwargs: Unpack[CreateFleetRequestTypeDef]
    ) -> CreateFleetResultTypeDef: ...

    def terminate_instances(
        self, **kwargs: Unpack[TerminateInstancesRequestTypeDef]
    ) -> TerminateInstancesResultTypeDef: ...

    def get_paginator(
        self, operation_name: Literal["describe_instances"]
    ) -> DescribeInstancesPaginator: ...


class SqsApi(Protocol):
    """The SQS calls of :func:`scheduler.events.poll_sqs`."""

    def receive_message(
        self, **kwargs: Unpack[ReceiveMessageRequestTypeDef]
    ) -> ReceiveMessageResultTypeDef: ...

    def delete_message(
        self, **kwargs: Unpack[DeleteMessageRequestTypeDef]
    ) -> EmptyResponseMetadataTypeDef: ...


class Elbv2Api(Protocol):
    """The ELBv2 calls of :class:`scheduler.actuator.alb.TargetGroup`."""

    def register_targets(self, **kwargs: Unpack[RegisterTargetsInputTypeDef]) -> dict[str, Any]: ...

    def deregister_targets(
        self, **kwargs: Unpack[DeregisterTargetsInputTypeDef]
    ) -> dict[str, Any]: ...

    def describe_target_health(
        self, **kwargs: Unpack[DescribeTargetHealthInputTypeDef]
    ) -> DescribeTargetHealthOutputTypeDef: ...
