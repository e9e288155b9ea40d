"""`scheduler bench`: measure, import and list goodput figures per instance type.

Thin over :mod:`bench.runner`, :mod:`bench.importer` and :mod:`oracle.reference`. Other modules
may add commands to :data:`app` (``scheduler.cli.bench_local`` adds ``bench local``; the
registry imports it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from bench.loadgen import PointMetrics
    from bench.runner import BenchmarkOutcome, BenchmarkRequest
    from bench.sweep import Slo
    from bench.workloads import Workload
    from oracle.mix import BucketMix
    from scheduler.cli.bench_progress import ProgressContext
    from scheduler.config import BenchConfig, Settings

# The harness, the database and the settings are imported inside the commands, so that
# `scheduler --help` (which builds every command) loads none of them.

app = typer.Typer(
    help="Goodput per instance type: the output tok/s one instance sustains within the latency "
    "SLO. Measure a vLLM endpoint, import vllm bench serve results, list what the planner uses.",
    no_args_is_help=True,
)

#: Exit code after Ctrl-C (partial results were stored).
EXIT_INTERRUPTED = 130

#: Options that ``bench run`` and ``bench local`` share.
TtftP95Option = Annotated[
    float | None, typer.Option(help="SLO: p95 time to first token, ms.", min=0.001)
]
TpotP95Option = Annotated[
    float | None, typer.Option(help="SLO: p95 time per output token, ms.", min=0.001)
]
RequestsPerPointOption = Annotated[
    int | None, typer.Option(help="Requests sent at each sweep point.", min=1)
]


@app.command()
def run(
    ctx: typer.Context,
    endpoint: Annotated[
        str, typer.Option(help="Base URL of the OpenAI-compatible server, e.g. http://host:8000")
    ],
    model: Annotated[str, typer.Option(help="Model name as the server serves it.")],
    instance_type: Annotated[
        str | None,
        typer.Option(help="Instance type measured; default: read from EC2 instance metadata."),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            help="What to send. A request mix measured per (input x output length) bucket: a "
            "preset (chat, rag, summarize, codegen), a ShareGPT JSON file or a histogram file "
            "(CSV input_tokens,output_tokens,count); each bucket gets its own sweep and goodput, "
            "which `scheduler plan --workload` uses. Else a bench.workloads table of "
            "config.toml, measured as one number."
        ),
    ] = None,
    ttft_p95_ms: TtftP95Option = None,
    tpot_p95_ms: TpotP95Option = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            help="Largest concurrency the sweep tries (with --open-loop: the largest request "
            "rate, per second).",
            min=1,
        ),
    ] = None,
    requests_per_point: RequestsPerPointOption = None,
    open_loop: Annotated[
        bool,
        typer.Option(
            "--open-loop",
            help="Sweep Poisson request rates (from 0.5/s, doubling) instead of concurrency.",
        ),
    ] = False,
    gpu_count: Annotated[
        int | None, typer.Option(help="GPUs of the instance; default: from the catalog, else 1.")
    ] = None,
    tensor_parallel: Annotated[int, typer.Option(help="vLLM tensor-parallel degree.")] = 1,
    connect_timeout_s: Annotated[
        float, typer.Option(help="Seconds the endpoint may take to answer the first probe.")
    ] = 5.0,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Sweep concurrency against ENDPOINT, find the goodput and record it in the oracle.

    Ctrl-C stops the sweep; what was measured is stored as an incomplete run (exit code 130).
    """
    from bench.record import gpu_count_of, instance_type_from_imds
    from bench.runner import BenchmarkRequest, run_benchmark
    from bench.sweep import SweepOptions
    from bench.workloads import bucket_workload
    from oracle.mix import resolve_mix

    runtime: Runtime = ctx.obj
    settings = runtime.settings
    bench_config = settings.bench
    mix = resolve_mix(workload) if workload else None
    chosen = (
        bucket_workload(mix.buckets[0].input_tokens, mix.buckets[0].output_tokens)
        if mix is not None
        else _workload(settings, workload or bench_config.default_workload)
    )
    if instance_type is None:
        instance_type = instance_type_from_imds()
        if instance_type is None:
            raise InputError(
                "--instance-type is needed: the EC2 instance metadata service did not answer "
                "(not on EC2?)"
            )
    engine = runtime.engine
    if gpu_count is None:
        gpu_count = gpu_count_of(engine, instance_type) or 1
    request = BenchmarkRequest(
        endpoint=endpoint,
        model=model,
        instance_type=instance_type,
        workload=chosen,
        slo=_slo(bench_config, ttft_p95_ms, tpot_p95_ms),
        options=SweepOptions(
            mode="rate" if open_loop else "concurrency",
            max_concurrency=max_concurrency or bench_config.max_concurrency,
            max_rate=float(max_concurrency or bench_config.max_concurrency),
            requests_per_point=requests_per_point or bench_config.requests_per_point,
            min_window_requests=bench_config.min_window_requests,
        ),
        gpu_count=gpu_count,
        tensor_parallel=tensor_parallel,
        request_timeout_s=bench_config.request_timeout_s,
        connect_timeout_s=connect_timeout_s,
    )
    if mix is not None:
        _run_buckets(engine, request, mix, output_format)
        return
    with _live_progress() as progress:
        outcome = run_benchmark(engine, request, progress=progress)
    if output_format is OutputFormat.json:
        emit_json(_outcome_json(outcome, request))
    else:
        _print_outcome(outcome, request)
    if not outcome.complete:
        err_console.print(
            f"interrupted: partial results stored as incomplete run {outcome.run_id}",
            markup=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED)


def _run_buckets(
    engine: Any, request: BenchmarkRequest, mix: BucketMix, output_format: OutputFormat
) -> None:
    """One sweep per bucket of ``mix`` (``bench run --workload MIX``), printed per bucket."""
    from bench.runner import run_bucket_benchmark

    with _live_progress() as progress:
        outcomes = run_bucket_benchmark(engine, request, mix, progress=progress)
    paired = [
        (bucket, outcomes[index] if index < len(outcomes) else None)
        for index, bucket in enumerate(mix.buckets)
    ]
    if output_format is OutputFormat.json:
        emit_json(
            {
                "workload_id": mix.workload_id,
                "mix_source": mix.source,
                "buckets": [
                    {
                        "bucket": bucket.name,
                        "share": bucket.share,
                        "input_tokens": bucket.input_tokens,
                        "output_tokens": bucket.output_tokens,
                        **(
                            _outcome_json(outcome, request)
                            if outcome is not None
                            else {"status": "not measured"}
                        ),
                    }
                    for bucket, outcome in paired
                ],
            }
        )
    else:
        table = Table(
            title=f"{request.model} on {request.instance_type}, workload {mix.workload_id} "
            f"({mix.source}), goodput per bucket (SLO: TTFT p95 <= "
            f"{request.slo.ttft_p95_ms:g} ms, TPOT p95 <= {request.slo.tpot_p95_ms:g} ms)"
        )
        for column in ("bucket", "share", "in tokens", "out tokens", "goodput tok/s", "run"):
            table.add_column(column, justify="right")
        for bucket, outcome in paired:
            table.add_row(
                bucket.name,
                f"{bucket.share:.1%}",
                str(bucket.input_tokens),
                str(bucket.output_tokens),
                f"{outcome.goodput_tokens_per_second:.1f}" if outcome else "-",
                (str(outcome.run_id) + ("" if outcome.complete else " (incomplete)"))
                if outcome
                else "not measured",
            )
        console.print(table)
    if outcomes and not outcomes[-1].complete:
        err_console.print(
            f"interrupted: partial results stored as incomplete run {outcomes[-1].run_id}",
            markup=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command("import")
def import_(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Result JSON files of `vllm bench serve --save-result` (one per sweep point).",
            dir_okay=False,
        ),
    ],
    instance_type: Annotated[str, typer.Option(help="Instance type the results came from.")],
    model: Annotated[
        str | None, typer.Option(help="Model name; default: the files' model_id.")
    ] = None,
    gpu_count: Annotated[int | None, typer.Option(help="GPUs of the instance.")] = None,
    tensor_parallel: Annotated[int, typer.Option(help="vLLM tensor-parallel degree.")] = 1,
    ttft_p95_ms: Annotated[float | None, typer.Option(help="SLO: p95 TTFT, ms.")] = None,
    tpot_p95_ms: Annotated[float | None, typer.Option(help="SLO: p95 TPOT, ms.")] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Store `vllm bench serve` results as one imported run (all files or none)."""
    from bench.importer import import_vllm_results
    from bench.record import gpu_count_of

    runtime: Runtime = ctx.obj
    bench_config = runtime.settings.bench
    engine = runtime.engine
    slo = _slo(bench_config, ttft_p95_ms, tpot_p95_ms)
    imported = import_vllm_results(
        engine,
        files,
        instance_type=instance_type,
        slo=slo,
        model=model,
        gpu_count=gpu_count or gpu_count_of(engine, instance_type) or 1,
        tensor_parallel=tensor_parallel,
    )
    payload = {
        "run_id": imported.run_id,
        "model": imported.model,
        "instance_type": instance_type,
        "points": imported.points,
        "goodput_tokens_per_second": imported.goodput_tokens_per_second,
    }
    if output_format is OutputFormat.json:
        emit_json(payload)
        return
    met = "" if imported.goodput_tokens_per_second > 0 else " (no point met the SLO: not used)"
    console.print(
        f"imported run {imported.run_id}: {imported.model} on {instance_type}, "
        f"{imported.points} point(s), goodput {imported.goodput_tokens_per_second:.1f} tok/s{met}",
        markup=False,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option(help="Model; default: [planner] model in config.")
    ] = None,
    runs: Annotated[
        bool, typer.Option("--runs", help="List every stored run instead of the chosen figures.")
    ] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Per instance type, the goodput figure the planner would use and why (source, age, run).

    Stores the published reference figures and the estimates first when they are missing.
    """
    from bench.record import list_runs
    from oracle.db import transaction
    from oracle.goodput import best_goodput
    from oracle.reference import ensure_goodput_figures

    runtime: Runtime = ctx.obj
    model = model or runtime.settings.planner.model
    engine = runtime.engine
    ensure_goodput_figures(engine, model=model)
    now = datetime.now(UTC)
    with transaction(engine) as session:
        if runs:
            rows = [_run_row(run, now) for run in list_runs(session, model=model)]
        else:
            rows = [
                {
                    "instance_type": fact.instance_type,
                    "goodput_tokens_per_second": fact.goodput_tokens_per_second,
                    "source": fact.source,
                    "observed_at": fact.observed_at,
                    "age_s": (now - fact.observed_at).total_seconds(),
                    "run_id": fact.run_id,
                    "gpu_count": fact.gpu_count,
                    "workload_id": fact.workload_id,
                    "source_detail": fact.source_detail,
                }
                for fact in best_goodput(session, model=model).values()
            ]
    if output_format is OutputFormat.json:
        emit_json({"model": model, "runs" if runs else "figures": rows})
        return
    title = f"{'Benchmark runs' if runs else 'Goodput the planner uses'} for {model}"
    table = Table(title=title)
    columns = (
        (
            "run_id",
            "instance_type",
            "workload_id",
            "bucket",
            "source",
            "status",
            "goodput_tokens_per_second",
            "points",
        )
        if runs
        else ("instance_type", "goodput_tokens_per_second", "source", "age_s", "run_id")
    )
    headers = {"goodput_tokens_per_second": "goodput tok/s", "age_s": "age", "run_id": "run"}
    for column in (*columns, "detail"):
        table.add_column(headers.get(column, column))
    for row in rows:
        cells = [_cell(column, row[column]) for column in columns]
        table.add_row(*cells, str(row.get("source_detail", "")))
    if not rows:
        console.print(
            f"no goodput figures for {model}: run `scheduler bench run` or import results",
            markup=False,
        )
        return
    console.print(table)


def _slo(config: BenchConfig, ttft_p95_ms: float | None, tpot_p95_ms: float | None) -> Slo:
    """The latency SLO: the options given, the ``[bench]`` section for the others."""
    from bench.sweep import Slo

    return Slo(
        ttft_p95_ms=ttft_p95_ms or config.ttft_p95_ms,
        tpot_p95_ms=tpot_p95_ms or config.tpot_p95_ms,
        max_error_rate=config.max_error_rate,
    )


def _workload(settings: Settings, name: str) -> Workload:
    from bench.workloads import Workload

    workloads = settings.bench.workloads
    if name not in workloads:
        raise InputError(
            f"unknown workload {name!r}; choose one of {', '.join(sorted(workloads))} or add "
            f"[bench.workloads.{name}] to config.toml"
        )
    return Workload.from_mapping(name, workloads[name].model_dump())


def _live_progress() -> ProgressContext:
    from scheduler.cli.bench_progress import ProgressContext

    return ProgressContext()


def _outcome_json(outcome: BenchmarkOutcome, request: BenchmarkRequest) -> dict[str, Any]:
    best = outcome.state.best_point
    return {
        "run_id": outcome.run_id,
        "status": "complete" if outcome.complete else "incomplete",
        "model": request.model,
        "instance_type": request.instance_type,
        "endpoint": outcome.server.base_url,
        "engine_version": outcome.server.engine_version,
        "workload_id": request.workload.workload_id,
        "slo": {
            "ttft_p95_ms": request.slo.ttft_p95_ms,
            "tpot_p95_ms": request.slo.tpot_p95_ms,
            "max_error_rate": request.slo.max_error_rate,
        },
        "goodput_tokens_per_second": outcome.goodput_tokens_per_second,
        "best_point": best.to_dict() if best else None,
        "points": [point.to_dict() for point in outcome.state.curve()],
        "partial_point": (
            outcome.state.partial_point.to_dict() if outcome.state.partial_point else None
        ),
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
    }


def _print_outcome(outcome: BenchmarkOutcome, request: BenchmarkRequest) -> None:
    table = Table(
        title=f"{request.model} on {request.instance_type}, workload "
        f"{request.workload.workload_id} (SLO: TTFT p95 <= {request.slo.ttft_p95_ms:g} ms, "
        f"TPOT p95 <= {request.slo.tpot_p95_ms:g} ms)"
    )
    for column in (
        "level",
        "requests",
        "errors",
        "in window",
        "steady tok/s",
        "whole-run tok/s",
        "TTFT mean ms",
        "TTFT p95 ms",
        "TPOT mean ms",
        "TPOT p95 ms",
        "SLO",
    ):
        table.add_column(column, justify="right")
    for point in outcome.state.curve():
        lat = point.slo_latency_ms
        table.add_row(
            _level(point),
            str(point.requests),
            str(point.errors),
            str(point.steady_requests),
            f"{point.goodput_tokens_per_second:.1f}",
            f"{point.output_tokens_per_second:.1f}",
            _ms(lat.get("ttft_ms_mean")),
            _ms(lat.get("ttft_ms_p95")),
            _ms(lat.get("tpot_ms_mean")),
            _ms(lat.get("tpot_ms_p95")),
            "pass" if point.passed else "fail",
        )
    console.print(table)
    console.print(
        "steady: over the window in which the whole load is in flight (warm-up and drain "
        "excluded); latency and the SLO are judged there. whole-run: as vllm bench serve counts.",
        markup=False,
    )
    state = "" if outcome.complete else " (incomplete)"
    console.print(
        f"goodput {outcome.goodput_tokens_per_second:.1f} tok/s, stored as run "
        f"{outcome.run_id}{state}",
        markup=False,
    )


def _run_row(run: Any, now: datetime) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "instance_type": run.instance_type,
        "source": run.source,
        "status": run.status,
        "goodput_tokens_per_second": run.goodput_tokens_per_second,
        "points": len(run.points),
        "observed_at": run.observed_at,
        "age_s": (now - run.observed_at).total_seconds(),
        "workload_id": run.workload_id,
        "bucket": run.bucket,
        "source_detail": run.source_detail,
    }


def _cell(column: str, value: Any) -> str:
    if column == "goodput_tokens_per_second":
        return f"{value:.1f}"
    if column == "age_s":
        return format_age(timedelta(seconds=value))
    return str(value)


def _level(point: PointMetrics) -> str:
    if point.concurrency is not None:
        return f"c={point.concurrency}"
    return f"{point.request_rate:.3g} req/s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
