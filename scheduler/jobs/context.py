"""What jobs run against, set once by the worker process (never at import time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from oracle.aws.clients import AwsClients
from scheduler.actuator.executor import Actuator
from scheduler.config import Settings


@dataclass
class JobContext:
    engine: Engine
    settings: Settings
    actuator_factory: Callable[[], Actuator]
    worker: str
    #: AWS clients of the sync and SQS jobs; None builds them from the settings (tests pass
    #: their own, to reach moto and stubbed calls).
    aws: AwsClients | None = None


_current: list[JobContext] = []


def set_current(context: JobContext) -> None:
    _current[:] = [context]


def current() -> JobContext:
    if not _current:
        raise RuntimeError("no job context: jobs run inside `scheduler worker` or `serve`")
    return _current[0]
