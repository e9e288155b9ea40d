"""The ALB adapter: register READY replicas in a target group, deregister before termination."""

from __future__ import annotations

from scheduler.actuator.aws import Elbv2Api


class TargetGroup:
    """One ELBv2 target group (instance targets on the service port)."""

    def __init__(self, client: Elbv2Api, target_group_arn: str, *, port: int) -> None:
        self._client = client
        self.arn = target_group_arn
        self._port = port

    def register(self, instance_id: str) -> None:
        self._client.register_targets(
            TargetGroupArn=self.arn, Targets=[{"Id": instance_id, "Port": self._port}]
        )

    def deregister(self, instance_id: str) -> None:
        self._client.deregister_targets(
            TargetGroupArn=self.arn, Targets=[{"Id": instance_id, "Port": self._port}]
        )

    def registered(self) -> set[str]:
        response = self._client.describe_target_health(TargetGroupArn=self.arn)
        return {
            description["Target"]["Id"]
            for description in response.get("TargetHealthDescriptions", [])
        }
