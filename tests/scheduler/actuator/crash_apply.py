"""Applies a plan and kills its own process (SIGKILL) at one launch, for the crash test.

Usage: python -m tests.scheduler.actuator.crash_apply DB_URL MOTO_URL PLAN_ID SUBNETS_JSON IMAGE
       LAUNCH_NUMBER {before-call,after-call}
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import boto3

from oracle.db import make_engine
from scheduler.actuator.ec2 import Ec2Adapter, LaunchRequest
from scheduler.actuator.executor import Actuator
from scheduler.config import ServiceConfig, ServiceSpecConfig, Settings


class _DyingAdapter(Ec2Adapter):
    def __init__(self, *args: Any, kill_at: int, point: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kill_at, self._point, self._launches = kill_at, point, 0

    def launch(self, request: LaunchRequest) -> str:
        self._launches += 1
        if self._launches == self._kill_at and self._point == "before-call":
            os.kill(os.getpid(), signal.SIGKILL)
        instance_id = super().launch(request)
        if self._launches == self._kill_at and self._point == "after-call":
            os.kill(os.getpid(), signal.SIGKILL)
        return instance_id


def main() -> None:
    db_url, moto_url, plan_id, subnets, image, kill_at, point = sys.argv[1:8]
    service = ServiceConfig(
        name="llm-test",
        spec=ServiceSpecConfig(image_id=image, subnets=json.loads(subnets)),
    )
    settings = Settings(service=service)

    def client(region: str) -> Any:
        return boto3.client("ec2", region_name=region, endpoint_url=moto_url)

    ec2 = _DyingAdapter(client, service, model="m", kill_at=int(kill_at), point=point)
    actuator = Actuator(make_engine(db_url), settings, ec2, probe=lambda _url: True)
    actuator.apply(int(plan_id), wait=False)


if __name__ == "__main__":
    main()
