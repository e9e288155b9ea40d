"""`scheduler apply`, `status`, `down` and `worker`: the fleet, as `sky serve up/status/down`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from oracle.errors import InputError
from scheduler.cli.output import (
    FormatOption,
    OutputFormat,
    console,
    emit_json,
    err_console,
    format_age,
)
from scheduler.runtime import Runtime
from scheduler.slo import parse_slo

if TYPE_CHECKING:
    from scheduler.jobs.context import JobContext

APPLY_HELP = (
    "Plan for the SLO and make the EC2 fleet match it, make-before-break: launch what is "
    "missing, wait until the new replicas pass the readiness probe (a one-token chat "
    "completion), then drain and terminate the surplus. Reconciles with EC2 by tag first. "
    "Capacity and quota errors mark the pool unavailable and replan (falling back to on-demand). "
    "--dry-run prints the actions and launches or terminates nothing (the plan is stored, so "
    "that `--plan-id N` applies exactly it). One apply at a time per service, across processes "
    "(a database lock shared with the API and the rebalancer): while another runs, this one "
    "exits with code 2 before storing anything."
)
STATUS_HELP = "The service and its replicas: endpoint, pool, market, state, uptime, price."
DOWN_HELP = "Drain and terminate every replica the service owns (then sweep orphans by tag)."
WORKER_HELP = (
    "Run the scheduled jobs (price sync, placement scores, Advisor feed, reconcile, rebalance; "
    "SQS events when a queue is configured). With several workers on one PostgreSQL database "
    "only the holder of the advisory lock acts; the others stand by."
)


def apply(
    ctx: typer.Context,
    slo: Annotated[
        str | None, typer.Option("--slo", help="Throughput SLO (default: service.slo).")
    ] = None,
    plan_id: Annotated[
        int | None, typer.Option("--plan-id", help="Apply a stored plan instead of planning.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the actions only.")] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    from scheduler.actuator.apply_lock import (
        ApplyInProgressError,
        apply_in_progress_message,
        apply_lock,
    )
    from scheduler.actuator.ec2 import check_launch_config
    from scheduler.actuator.reconcile import reconcile
    from scheduler.services.plans import create_plan
    from scheduler.services.wiring import build_actuator

    runtime: Runtime = ctx.obj
    settings = runtime.settings
    text = slo or settings.service.slo
    if plan_id is None and not text:
        raise InputError("no SLO: pass --slo 500tok/s or set service.slo in config.toml")
    lock = apply_lock(runtime.engine, settings.service.name)
    if not dry_run:
        check_launch_config(settings.service)
        # Before anything is stored: a refused apply leaves no plan behind.
        if not lock.try_acquire():
            raise ApplyInProgressError(apply_in_progress_message(settings.service.name))
    try:
        if plan_id is None:
            plan_id = create_plan(
                runtime.engine, settings, slo_tokens_per_second=parse_slo(text), origin="cli"
            )
        actuator = build_actuator(runtime.engine, settings)
        if not dry_run:
            reconcile(actuator)
        with err_console.status("applying plan (waiting for readiness probes)", spinner="dots"):
            result = actuator.apply(plan_id, dry_run=dry_run)
    finally:
        lock.release()
    if output_format is OutputFormat.json:
        emit_json(result.to_dict())
        return
    table = Table(title=f"plan {plan_id}: {'dry run, ' if dry_run else ''}actions")
    for column in ("ACTION", "POOL", "REPLICA", "REASON"):
        table.add_column(column)
    for action in result.actions:
        table.add_row(action.kind, action.pool.label, str(action.replica_id or "-"), action.reason)
    console.print(table)
    if not dry_run:
        console.print(
            f"launched {len(result.launched)}, ready {len(result.ready)}, failed "
            f"{len(result.failed)}, terminated {len(result.terminated)}"
            + (f", capacity errors {len(result.capacity_errors)}" if result.capacity_errors else "")
        )


def status(ctx: typer.Context, output_format: FormatOption = OutputFormat.table) -> None:
    from scheduler.services.fleet import list_replicas, service_summary

    runtime: Runtime = ctx.obj
    name = runtime.settings.service.name
    now = datetime.now(UTC)
    summary = service_summary(runtime.engine, service=name, now=now)
    replicas = list_replicas(runtime.engine, service=name)
    if output_format is OutputFormat.json:
        emit_json({"service": summary.to_dict(), "replicas": [r.to_dict() for r in replicas]})
        return
    services = Table(title="Services")
    for column in ("NAME", "UPTIME", "STATUS", "REPLICAS", "PRICE $/h", "PLAN"):
        services.add_column(column)
    uptime = summary.uptime_s
    services.add_row(
        name,
        format_age(timedelta(seconds=uptime) if uptime is not None else None),
        summary.status,
        f"{summary.replicas_ready}/{summary.replicas}",
        f"{summary.price_usd_per_hour:.3f}",
        str(summary.plan.id) if summary.plan else "-",
    )
    console.print(services)
    table = Table(title="Service Replicas")
    for column in ("ID", "ENDPOINT", "POOL", "MARKET", "STATE", "UPTIME", "PRICE $/h"):
        table.add_column(column)
    for r in replicas:
        launched = r.launched_at
        table.add_row(
            str(r.id),
            r.endpoint or "-",
            f"{r.region}/{r.zone or r.availability_zone or '-'}/{r.instance_type}",
            r.market,
            r.state,
            format_age(now - launched if launched else None),
            f"{r.price_usd_per_hour:.3f}",
        )
    console.print(table)


def down(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would end.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    from scheduler.services.fleet import take_down
    from scheduler.services.wiring import build_actuator

    runtime: Runtime = ctx.obj
    actuator = build_actuator(runtime.engine, runtime.settings)
    if not dry_run and not yes:
        typer.confirm(f"terminate every replica of {actuator.service}?", abort=True)
    ended = take_down(actuator, dry_run=dry_run)
    if output_format is OutputFormat.json:
        emit_json({"dry_run": dry_run, "replicas": [r.to_dict() for r in ended]})
        return
    verb = "would terminate" if dry_run else "terminated"
    console.print(f"{verb} {len(ended)} replicas of {actuator.service}")


def worker(ctx: typer.Context) -> None:
    from scheduler.jobs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runtime: Runtime = ctx.obj
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stop.set())
    run_worker(
        job_context(runtime),
        stop=stop,
        on_state=lambda state: err_console.print(f"worker {state}", highlight=False),
    )


def job_context(runtime: Runtime) -> JobContext:
    from scheduler.jobs.context import JobContext
    from scheduler.services.wiring import build_actuator

    engine, settings = runtime.engine, runtime.settings
    return JobContext(
        engine=engine,
        settings=settings,
        actuator_factory=lambda: build_actuator(engine, settings),
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


def register(app: typer.Typer) -> None:
    app.command("apply", help=APPLY_HELP)(apply)
    app.command("status", help=STATUS_HELP)(status)
    app.command("down", help=DOWN_HELP)(down)
    app.command("worker", help=WORKER_HELP)(worker)
