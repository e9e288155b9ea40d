"""`scheduler oracle import PATH...`: load price and catalog files into the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from scheduler.cli.oracle import app
from scheduler.cli.output import FormatOption, OutputFormat, console, emit_json, err_console
from scheduler.runtime import Runtime
from scheduler.timeparse import parse_moment

if TYPE_CHECKING:
    from oracle.importers import ImportResult

# The importers (and the database under them) are imported inside the command.

HELP = (
    "Import price and catalog files; each file's format is told from its content.\n\n"
    "Recognised: the AWS CLI's describe-spot-price-history JSON (or its bare list); spot price "
    "history CSV/TSV with AZ names or AZ IDs; the Spot Advisor JSON (GPU and accelerator types "
    "only) and its derived CSV; the SkyPilot AWS catalog CSV (on-demand prices and a per-AZ-ID "
    "spot snapshot); an on-demand price history CSV (timestamp, instance, price_usd; empty "
    "prices skipped); EC2 instance type specs (JSON/CSV), offerings CSVs (region, location, "
    "instance_type), describe-availability-zones JSON (the AZ name-to-ID mapping) and SkyPilot "
    "spot availability traces (losses, found and empty probes as pool observations; the pool "
    "and start date come from the path, availability/1-node/aws-MM-DD-YYYY/<AZ>_v100_1.json, "
    "or the start from --observed-at).\n\n"
    "All files are imported in one transaction: one bad row (named FILE:LINE) and nothing is "
    "written. Re-importing a file adds nothing. Files without dates (catalog, advisor, specs) "
    "are observed at --observed-at, else at the file's modification time, and the output says "
    "which. Preemption traces (`scheduler backtest`) and vLLM benchmark results (`scheduler bench "
    "import`) are refused with the command that handles them."
)


@app.command("import", help=HELP)
def import_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files to import.", show_default=False)],
    output_format: FormatOption = OutputFormat.table,
    observed_at: Annotated[
        str | None,
        typer.Option(
            "--observed-at",
            help="When the facts of undated files were true (ISO 8601; UTC if no offset). "
            "Default: each file's modification time.",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="Region of an on-demand price history without a region column "
            "(default us-east-1).",
        ),
    ] = None,
) -> None:
    from oracle.importers import import_files

    runtime: Runtime = ctx.obj
    snapshot_time = parse_moment(observed_at, option="--observed-at")
    if output_format is OutputFormat.json:
        results = import_files(runtime.engine, paths, observed_at=snapshot_time, region=region)
        emit_json([result.to_dict() for result in results])
        return
    with err_console.status(f"Importing {len(paths)} file(s)..."):
        results = import_files(runtime.engine, paths, observed_at=snapshot_time, region=region)
    _print_table(results)


def _print_table(results: list[ImportResult]) -> None:
    from oracle.importers.base import OBSERVED_FROM_MTIME, OBSERVED_FROM_OPTION

    short_from = {OBSERVED_FROM_MTIME: "file mtime", OBSERVED_FROM_OPTION: "--observed-at"}
    table = Table(title="Imported (source: file)")
    table.add_column("file / kind", overflow="fold")
    table.add_column("read", justify="right")
    table.add_column("table", no_wrap=True)
    table.add_column("inserted", justify="right")
    table.add_column("observed at", min_width=17)
    for result in results:
        observed = "per record"
        if result.observed_at is not None:
            source = short_from.get(result.observed_at_from or "", "")
            observed = f"{result.observed_at:%Y-%m-%d %H:%M}Z\n({source})"
        first = [f"{Path(result.path).name}\n{result.kind}", str(result.rows_read)]
        for name, count in result.rows_inserted.items():
            table.add_row(*first, name, str(count), observed)
            first, observed = ["", ""], ""
    console.print(table)
    for result in results:
        for note in result.notes:
            console.print(f"{Path(result.path).name}: {note}", markup=False, highlight=False)
