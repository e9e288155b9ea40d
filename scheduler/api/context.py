"""What the API needs, built once by the composition root and kept on ``app.state``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from oracle.locks import DatabaseLock
from scheduler.actuator.apply_lock import apply_lock
from scheduler.actuator.executor import Actuator
from scheduler.config import Settings
from scheduler.services.recommendations import RecommendationCache

TOKEN_ENV = "SCHEDULER_API_TOKEN"


@dataclass
class ApiContext:
    engine: Engine
    settings: Settings
    #: Builds the actuator (EC2, ALB, probe); tests pass one that talks to moto.
    actuator_factory: Callable[[], Actuator]
    recommendations: RecommendationCache
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def api_token(self) -> str:
        return os.environ.get(TOKEN_ENV) or self.settings.service.api_token

    @property
    def service(self) -> str:
        return self.settings.service.name

    def apply_lock(self) -> DatabaseLock:
        """The database lock an apply holds: one apply at a time across every process."""
        return apply_lock(self.engine, self.service)
