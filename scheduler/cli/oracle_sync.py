"""`scheduler oracle sync`: fill the oracle from AWS (live) or from the embedded sample market."""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from oracle.aws.kinds import ADVISOR_KIND, REGION_KINDS
from oracle.errors import InputError
from scheduler.cli.oracle import app
from scheduler.cli.output import FormatOption, OutputFormat, console, emit_json, err_console
from scheduler.runtime import Runtime

if TYPE_CHECKING:
    from oracle.aws.sync import SyncSummary

# boto3, the sync and the database are imported inside the command.

HELP = (
    "Sync the oracle from AWS (live) or from the embedded sample market.\n\n"
    "--source aws (credentials the usual way: environment, profile, instance role) reads, per "
    "region and in parallel: the AZ name-to-ID map, the GPU and accelerator instance types and "
    "their AZ offerings (catalog), spot price history (a --days backfill the first time, then "
    "from the newest stored record), spot placement scores for "
    "oracle.placement_target_capacities, on-demand prices (Pricing API) and the four EC2 "
    "vCPU quotas; then the Spot Advisor feed (oracle.advisor_url, or advisor_file). A region "
    "that fails (not enabled, bad credentials, throttled past oracle.max_attempts) is recorded in "
    "ingest_runs and skipped; the command exits 0 when at least one region succeeded, 1 when "
    "none did.\n\n"
    "--source sample generates a deterministic market (--days of history) for a machine "
    "without AWS credentials; every row it writes is marked source=sample."
)


class SyncSource(enum.StrEnum):
    aws = "aws"
    sample = "sample"


KIND_TITLES = {
    "catalog": "catalog",
    "spot_prices": "spot prices",
    "placement_scores": "placement",
    "on_demand_prices": "on-demand",
    "service_quotas": "quotas",
}


@app.command("sync", help=HELP)
def sync_command(
    ctx: typer.Context,
    source: Annotated[
        SyncSource, typer.Option("--source", help="aws (live) or sample (embedded, offline).")
    ] = SyncSource.aws,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            help="Days of spot price history to backfill (default: oracle.history_days).",
        ),
    ] = None,
    regions: Annotated[
        list[str] | None,
        typer.Option(
            "--regions",
            help="Regions to sync, repeated or comma-separated (default: oracle.regions, "
            "else every region enabled for the account).",
        ),
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--types",
            help="Instance types, repeated or comma-separated (default: "
            "oracle.instance_types, else every GPU and accelerator type).",
        ),
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kinds",
            help="AWS only: what to sync, repeated or comma-separated, among "
            f"{', '.join((*REGION_KINDS, ADVISOR_KIND))} (default: all). The catalog always "
            "runs.",
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    from oracle.aws.clients import AwsClients
    from oracle.aws.sync import sync_aws
    from scheduler.services.oracle_sync import options_from_config

    runtime: Runtime = ctx.obj
    settings = runtime.settings.oracle
    chosen_regions = _split(regions) or list(settings.regions)
    chosen_types = _split(types) or list(settings.instance_types)
    history_days = days or settings.history_days
    if source is SyncSource.sample:
        _sync_sample(runtime, history_days, chosen_regions, chosen_types, output_format)
        return
    options = options_from_config(
        settings,
        regions=chosen_regions,
        instance_types=chosen_types,
        days=history_days,
        kinds=_kinds(_split(kinds)),
    )
    clients = AwsClients(max_attempts=settings.max_attempts)
    engine = runtime.engine
    with _RegionProgress(disable=output_format is OutputFormat.json) as progress:
        summary = sync_aws(engine, clients, config=options, on_progress=progress.update)
    if output_format is OutputFormat.json:
        emit_json(summary.to_dict())
    else:
        _print_summary(summary)
    if not summary.succeeded:
        raise typer.Exit(1)


def _sync_sample(
    runtime: Runtime,
    days: int,
    regions: list[str],
    types: list[str],
    output_format: OutputFormat,
) -> None:
    # Imported here: the sample generator is only needed by this branch.
    from oracle.sample import ingest_sample

    engine = runtime.engine
    with _RegionProgress(disable=output_format is OutputFormat.json) as progress:
        counts = ingest_sample(
            engine,
            seed=runtime.settings.oracle.sample_seed,
            days=days,
            regions=regions or None,
            instance_types=types or None,
            on_progress=progress.sample_update,
        )
    if output_format is OutputFormat.json:
        emit_json({"source": "sample", "rows": counts})
        return
    table = Table(title="Synced the embedded SAMPLE market (source: sample, not real AWS data)")
    table.add_column("table")
    table.add_column("rows added", justify="right")
    for name, count in counts.items():
        table.add_row(name, str(count))
    console.print(table)


def _print_summary(summary: SyncSummary) -> None:
    table = Table(title="Synced from AWS (source: aws)")
    table.add_column("region")
    table.add_column("status")
    for title in KIND_TITLES.values():
        table.add_column(title, justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("error", overflow="fold")
    styles = {"ok": "green", "partial": "yellow", "failed": "red"}
    for result in summary.regions:
        rows = {kind.kind: kind for kind in result.kinds}
        cells = [
            "-"
            if kind not in rows
            else ("failed" if rows[kind].status == "failed" else str(rows[kind].rows))
            for kind in KIND_TITLES
        ]
        table.add_row(
            result.region,
            f"[{styles[result.status]}]{result.status}[/]",
            *cells,
            f"{result.duration_s:.1f}",
            result.error or "",
        )
    console.print(table)
    if summary.advisor is not None:
        advisor = summary.advisor
        detail = f"{advisor.rows} rows" if advisor.status == "ok" else f"failed: {advisor.error}"
        console.print(f"Spot Advisor feed: {detail}", highlight=False)
    succeeded, failed = summary.succeeded, summary.failed
    console.print(
        f"{len(succeeded)} region(s) synced" + (f"; failed: {', '.join(failed)}" if failed else ""),
        highlight=False,
    )


class _RegionProgress:
    """One progress bar per region, created as each region reports (from worker threads).

    The display starts with the first report, so an error raised before any region starts
    leaves stderr holding that one line only.
    """

    def __init__(self, *, disable: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[step]}"),
            console=err_console,
            disable=disable,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> _RegionProgress:
        return self

    def __exit__(self, *_: Any) -> None:
        if self._tasks:
            self._progress.stop()

    def update(self, region: str, kind: str, done: int, total: int) -> None:
        task = self._task(region, total)
        step = "[red]failed[/]" if kind == "failed" else KIND_TITLES.get(kind, kind)
        self._progress.update(task, completed=done, total=max(total, 1), step=step)

    def sample_update(self, region: str, rows: int) -> None:
        task = self._task(region, 1)
        self._progress.update(task, completed=1, step=f"{rows} price rows")

    def _task(self, region: str, total: int) -> TaskID:
        with self._lock:
            if not self._tasks:
                self._progress.start()
            if region not in self._tasks:
                self._tasks[region] = self._progress.add_task(region, total=max(total, 1), step="")
            return self._tasks[region]


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _kinds(chosen: list[str]) -> list[str]:
    every = (*REGION_KINDS, ADVISOR_KIND)
    if not chosen:
        return list(every)
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        raise InputError(
            f"--kinds: unknown kind {', '.join(map(repr, unknown))}; choose from {', '.join(every)}"
        )
    return ["catalog", *(kind for kind in every if kind in chosen and kind != "catalog")]
