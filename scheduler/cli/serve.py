"""`scheduler serve`: the HTTP API on uvicorn (and the jobs, when service.run_jobs is true)."""

from __future__ import annotations

import gc
import socket
import threading
from typing import Annotated

import typer

from scheduler.cli.output import err_console
from scheduler.runtime import Runtime

HELP = (
    "Serve the HTTP API: GET /recommendations, POST /plans, POST /plans/{id}/apply, GET /fleet, "
    "GET /actions, POST /events/ec2, GET /prices, GET /benchmarks, /healthz, /readyz, /metrics "
    "(OpenAPI at /docs), and the read-only dashboard at /ui (on an empty oracle it first loads "
    "the embedded sample market). Endpoints that change anything need `Authorization: Bearer "
    "TOKEN` (service.api_token or $SCHEDULER_API_TOKEN). With service.run_jobs = true (or "
    "--jobs) the scheduled jobs run here too, under the same lock as `scheduler worker`."
)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address (default: service.host).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: service.port; 0 picks a free one).")
    ] = None,
    jobs: Annotated[
        bool | None,
        typer.Option("--jobs/--no-jobs", help="Run the jobs (default: service.run_jobs)."),
    ] = None,
) -> None:
    import uvicorn

    from scheduler.api.app import app_for

    runtime: Runtime = ctx.obj
    settings = runtime.settings
    engine = runtime.engine
    chosen_host = host or settings.service.host
    chosen_port = settings.service.port if port is None else port
    if chosen_port == 0:
        with socket.socket() as probe:
            probe.bind((chosen_host, 0))
            chosen_port = probe.getsockname()[1]
    stop = threading.Event()
    if settings.service.run_jobs if jobs is None else jobs:
        _start_jobs(runtime, stop)
    app = app_for(engine, settings)
    # Everything imported and built so far lives as long as the process: keep it out of the
    # garbage collector's full passes, which otherwise rescan it on every request burst.
    gc.collect()
    gc.freeze()
    err_console.print(f"serving on http://{chosen_host}:{chosen_port}", highlight=False)
    try:
        uvicorn.run(app, host=chosen_host, port=chosen_port, log_level="warning")
    finally:
        stop.set()


def _start_jobs(runtime: Runtime, stop: threading.Event) -> None:
    from scheduler.cli.fleet import job_context
    from scheduler.jobs.worker import run_worker

    thread = threading.Thread(
        target=run_worker, args=(job_context(runtime),), kwargs={"stop": stop}, daemon=True
    )
    thread.start()
