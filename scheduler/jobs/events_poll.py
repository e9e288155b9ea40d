"""Job: read EC2 events from the SQS queue an EventBridge rule feeds (when one is configured)."""

from __future__ import annotations

from scheduler.events import poll_sqs
from scheduler.jobs.context import JobContext
from scheduler.jobs.recording import JobDetails, JobRun, recorded

NAME = "events"


def run() -> JobRun:
    return recorded(NAME, _body)


def _body(context: JobContext) -> JobDetails:
    from scheduler.services.wiring import aws_clients

    queue_url = context.settings.service.sqs_queue_url
    region = queue_url.split(".")[1] if queue_url.startswith("https://sqs.") else "us-east-1"
    sqs = (context.aws or aws_clients(context.settings)).client("sqs", region)
    return {"handled": poll_sqs(context.actuator_factory(), sqs, queue_url)}
