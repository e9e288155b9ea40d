"""`scheduler oracle stats`: per spot pool price statistics, risk and the age of each fact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from oracle.db import transaction
from oracle.errors import InputError
from oracle.stats import PoolStats, pool_stats, pool_stats_to_dict
from scheduler.cli.oracle import app
from scheduler.cli.output import (
    FormatOption,
    OutputFormat,
    console,
    emit_json,
    err_console,
    format_age,
)
from scheduler.runtime import Runtime

SAMPLE_WARNING = "sample data: not real prices"

HELP = """Price statistics of every spot pool (region, AZ, instance type), as known at a moment.

Spot prices are step functions: each change record holds until the next. Means, p95, max,
volatility and the share near on-demand are weighted by time; the 7, 30 and 90-day windows end
at --as-of and open with the price in effect at their start. --as-of ignores every fact
observed after it (a price change from its timestamp, an on-demand price from its effective
date, scores and Advisor entries from when they were fetched). Prices in USD per instance-hour.

\b
JSON (--format json): a list, one object per pool:
  region, availability_zone (AZ name), availability_zone_id, zone (AZ ID, else name),
  instance_type, as_of;
  source: where the price came from (aws, file, sample); sample: true if any figure is sample;
  current_price_usd_per_hour: the last change at or before as_of, forward-filled;
  mean_price_usd_per_hour_7d, _30d, _90d: time-weighted means over the windows;
  p95_price_usd_per_hour_90d: the price not exceeded 95% of the time; max_price_usd_per_hour_90d;
  volatility_90d: time-weighted standard deviation / mean;
  share_above_80pct_on_demand_90d: share of the time (0-1) above 80% of on-demand;
  changes_90d: price changes in the window;
  on_demand_price_usd_per_hour: the list price in effect (Linux for Linux/UNIX);
  placement_scores: {"target capacity": score 1-10}, the AZ's latest (else the region's);
  interruption_band_index (0 "<5%" .. 4 ">20%"), interruption_band_label, savings_pct: the
  latest Spot Instance Advisor entry;
  price_*, on_demand_*, placement_*, advisor_* + source, observed_at, age_s: where each fact
  came from, when it was observed and its age in seconds at as_of.
Fields without a fact are null.
"""


@app.command("stats", help=HELP)
def stats_command(
    ctx: typer.Context,
    instance_types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="Instance type to show (repeat, or comma-separate). Default: all.",
            show_default=False,
        ),
    ] = None,
    regions: Annotated[
        list[str] | None,
        typer.Option(
            "--region",
            help="Region to show (repeat, or comma-separate). Default: all.",
            show_default=False,
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Evaluate as known at this time (ISO 8601; UTC if no offset). Default: now.",
            show_default=False,
        ),
    ] = None,
    product_description: Annotated[
        str, typer.Option("--product", help="Spot price product description.")
    ] = "Linux/UNIX",
    output_format: FormatOption = OutputFormat.table,
) -> None:
    runtime: Runtime = ctx.obj
    moment = parse_as_of(as_of)
    with transaction(runtime.engine) as session:
        if output_format is OutputFormat.json:
            results = _stats(session, moment, regions, instance_types, product_description)
        else:
            with err_console.status("Computing pool statistics..."):
                results = _stats(session, moment, regions, instance_types, product_description)
    if output_format is OutputFormat.json:
        if any(stats.price_source == "sample" for stats in results):
            err_console.print(f"note: {SAMPLE_WARNING}", highlight=False)
        emit_json([pool_stats_to_dict(stats) for stats in results])
        return
    if not results:
        err_console.print(
            "No spot prices match. Fill the oracle first: `scheduler oracle sync --source aws` "
            "(or `--source sample`), or `scheduler oracle import FILE`; or widen --type/--region/"
            "--as-of.",
            highlight=False,
        )
        return
    _print_table(results)


def parse_as_of(text: str | None) -> datetime | None:
    """``--as-of`` as an aware UTC datetime (None: now); a naive time is taken as UTC."""
    if text is None:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--as-of: bad time {text!r}; write ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00Z"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _stats(
    session: Session,
    moment: datetime | None,
    regions: list[str] | None,
    instance_types: list[str] | None,
    product_description: str,
) -> list[PoolStats]:
    return pool_stats(
        session,
        as_of=moment,
        regions=_split(regions),
        instance_types=_split(instance_types),
        product_description=product_description,
    )


def _split(values: list[str] | None) -> list[str] | None:
    names = [name.strip() for value in values or () for name in value.split(",") if name.strip()]
    return names or None


def _print_table(results: list[PoolStats]) -> None:
    sample = any(stats.price_source == "sample" for stats in results)
    as_of = results[0].as_of
    title = f"Spot pools as of {as_of:%Y-%m-%d %H:%M} UTC ($/h)"
    table = Table(
        title=f"{title} - {SAMPLE_WARNING.upper()}" if sample else title,
        caption=SAMPLE_WARNING if sample else None,
    )
    for name, justify in (
        ("region", "left"),
        ("AZ", "left"),
        ("type", "left"),
        ("now", "right"),
        ("7d", "right"),
        ("30d", "right"),
        ("90d", "right"),
        ("p95", "right"),
        ("max", "right"),
        ("on-demand", "right"),
        ("save", "right"),
        ("vol", "right"),
        (">80% OD", "right"),
        ("chg", "right"),
        ("scores", "left"),
        ("band", "left"),
        ("source", "left"),
        ("age", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = [_row(stats) for stats in results]
    # The pool's name stays whole in a narrow terminal; the figures give way first.
    for index in range(3):
        column = table.columns[index]
        column.no_wrap = True
        column.min_width = max(len(row[index]) for row in rows)
    for row in rows:
        table.add_row(*row)
    if sample:
        console.print(f"[bold yellow]{SAMPLE_WARNING}[/]")
    console.print(table)


def _row(stats: PoolStats) -> list[str]:
    saving = None
    if stats.current_price_usd_per_hour is not None and stats.on_demand_price_usd_per_hour:
        saving = 1 - stats.current_price_usd_per_hour / stats.on_demand_price_usd_per_hour
    zone = stats.availability_zone or stats.zone
    if stats.availability_zone_id and stats.availability_zone_id != zone:
        zone = f"{zone} ({stats.availability_zone_id})"
    age = format_age(stats.as_of - stats.price_observed_at) if stats.price_observed_at else "-"
    return [
        stats.region,
        zone,
        stats.instance_type,
        _price(stats.current_price_usd_per_hour),
        _price(stats.mean_price_usd_per_hour_7d),
        _price(stats.mean_price_usd_per_hour_30d),
        _price(stats.mean_price_usd_per_hour_90d),
        _price(stats.p95_price_usd_per_hour_90d),
        _price(stats.max_price_usd_per_hour_90d),
        _price(stats.on_demand_price_usd_per_hour),
        _percent(saving),
        _fraction(stats.volatility_90d),
        _percent(stats.share_above_80pct_on_demand_90d),
        str(stats.changes_90d),
        " ".join(f"{c}:{s}" for c, s in stats.placement_scores.items()) or "-",
        stats.interruption_band_label or "-",
        stats.price_source or "-",
        age,
    ]


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
