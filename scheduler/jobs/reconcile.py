"""Job: reconcile the journal with EC2 by tag, then advance launched replicas (probe them)."""

from __future__ import annotations

from scheduler.actuator.reconcile import reconcile
from scheduler.jobs.context import JobContext
from scheduler.jobs.recording import JobDetails, JobRun, recorded

NAME = "reconcile"


def run() -> JobRun:
    return recorded(NAME, _body)


def _body(context: JobContext) -> JobDetails:
    actuator = context.actuator_factory()
    report = reconcile(actuator)
    states = actuator.progress()
    return {**report.to_dict(), "probed": len(states)}
