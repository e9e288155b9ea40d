"""`scheduler bench local`: start a real vLLM server here, measure its goodput, record it, stop it.

The measurement is the harness's own (bench.runner), against the server's URL; the run is then
marked with how the server was started (build, weights, start-up time), so `bench list` shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from bench.local import DEFAULT_STARTUP_TIMEOUT_S, Build, LocalServer, start_local_server
from bench.runner import BenchmarkOutcome, BenchmarkRequest, run_benchmark
from bench.sweep import Slo, SweepOptions, SweepProgress
from bench.workloads import Workload, fixed_workload
from oracle.db import transaction
from oracle.models import BenchmarkRunModel

#: The CPU server's default workload: short prompts and replies (it makes about 34 output tok/s
#: on 2 cores, and its context is 1024 tokens, too short for the chat mix's 3072-token prompts).
CPU_DEFAULT_INPUT_TOKENS = 64
CPU_DEFAULT_OUTPUT_TOKENS = 32


@dataclass(frozen=True)
class LocalBenchmarkRequest:
    model: str
    instance_type: str
    workload: Workload
    slo: Slo
    options: SweepOptions
    served_model_name: str | None = None
    build: Build | None = None
    cache_dir: Path | None = None
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    request_timeout_s: float = 120.0


@dataclass
class LocalBenchmarkOutcome:
    outcome: BenchmarkOutcome
    build: Build
    model_path: str
    #: Seconds from starting the server to its first healthy answer (0 for a given server).
    startup_s: float


def cpu_default_workload() -> Workload:
    return fixed_workload(CPU_DEFAULT_INPUT_TOKENS, CPU_DEFAULT_OUTPUT_TOKENS, api="completions")


def run_local_benchmark(
    engine: Engine,
    request: LocalBenchmarkRequest,
    *,
    server: LocalServer | None = None,
    progress: SweepProgress | None = None,
    on_status: Callable[[str], None] | None = None,
) -> LocalBenchmarkOutcome:
    """Start the server (unless ``server`` is given: then it is used and left running), run the
    goodput sweep against it, record the run, and stop the server in a finally."""
    say = on_status or (lambda _message: None)
    owned = server is None
    startup_s = 0.0
    if server is None:
        say(f"starting a local vLLM server for {request.model} (about a minute on a CPU)")
        started = time.monotonic()
        server = start_local_server(
            model=request.model,
            served_model_name=request.served_model_name,
            build=request.build,
            cache_dir=request.cache_dir,
            startup_timeout_s=request.startup_timeout_s,
        )
        startup_s = time.monotonic() - started
        say(f"{server.build} build ready at {server.base_url} after {startup_s:.0f} s")
    try:
        outcome = run_benchmark(
            engine,
            BenchmarkRequest(
                endpoint=server.base_url,
                model=server.served_model_name,
                instance_type=request.instance_type,
                workload=request.workload,
                slo=request.slo,
                options=request.options,
                request_timeout_s=request.request_timeout_s,
                connect_timeout_s=30.0,
            ),
            progress=progress,
        )
        _mark_local_run(engine, outcome, server, startup_s)
    finally:
        if owned:
            say(f"stopping the local vLLM server (pid {server.pid})")
            server.stop()
    return LocalBenchmarkOutcome(outcome, server.build, server.launch.model_path, startup_s)


def _mark_local_run(
    engine: Engine, outcome: BenchmarkOutcome, server: LocalServer, startup_s: float
) -> None:
    version = outcome.server.engine_version or "unknown version"
    with transaction(engine) as session:
        run = session.get(BenchmarkRunModel, outcome.run_id)
        if run is None:
            return
        run.source_detail = (
            f"scheduler bench local: {server.build} build of vLLM {version} on this machine, "
            f"weights {server.launch.model_path}"
        )[:512]
        # A new dict, so that the JSON column sees the change.
        run.details = {
            **(run.details or {}),
            "local_server": {
                "build": server.build,
                "model_path": server.launch.model_path,
                "served_model_name": server.served_model_name,
                "startup_s": round(startup_s, 1),
            },
        }
