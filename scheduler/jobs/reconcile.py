"""Job: reconcile the journal with EC2 by tag, then advance launched replicas (probe them)."""

from __future__ import annotations

from typing import Any

from scheduler.actuator.reconcile import reconcile
from scheduler.jobs.context import JobContext
from scheduler.jobs.recording import recorded

NAME = "reconcile"


def run() -> dict[str, Any]:
    return recorded(NAME, _body)


def _body(context: JobContext) -> dict[str, Any]:
    actuator = context.actuator_factory()
    report = reconcile(actuator)
    states = actuator.progress()
    return {**report.to_dict(), "probed": len(states)}
