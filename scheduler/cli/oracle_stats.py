"""`scheduler oracle stats`: per spot pool price statistics, risk and the age of each fact."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from oracle.risk import PoolRisk, risk_to_dict
from scheduler.cli.oracle import app
from scheduler.cli.output import (
    FormatOption,
    OutputFormat,
    console,
    emit_json,
    err_console,
)
from scheduler.runtime import Runtime
from scheduler.timeparse import format_age, parse_moment

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from oracle.stats import PoolStats

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
  came from, when it was observed and its age in seconds at as_of;
  hazard_per_hour (losses per hour of held capacity) and launch_availability (probability a
  launch succeeds): posterior means with the Advisor band as prior (gamma-Poisson and
  beta-binomial, see oracle/risk.py) and the pool's observations up to as_of as evidence;
  risk_* (where the estimate came from): risk_source ("prior", or "observed (sources)");
  risk_prior_* (risk_prior_hazard_per_hour, risk_prior_availability, risk_prior_source): the
  prior; risk_observations (events counted), risk_losses, risk_exposure_hours,
  risk_launches_ok, risk_launch_failures, risk_rebalances; risk_first_* and risk_last_*
  observed_at, risk_age_s: when the first and newest observations were made, and the newest
  one's age in seconds at as_of.
Pools observed (interruptions, capacity errors, imported availability traces) but without spot
prices are listed after the priced ones, with null price fields.
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
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="Every figure in the table (p95, max, volatility, share above 80% of "
            "on-demand, changes, all scores, source); the default fits 80 columns.",
        ),
    ] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    from oracle.db import transaction

    runtime: Runtime = ctx.obj
    moment = parse_moment(as_of, option="--as-of", example="2026-11-01T12:00Z")
    with transaction(runtime.engine) as session:
        if output_format is OutputFormat.json:
            results = _stats(session, moment, regions, instance_types, product_description)
            risks = _risks(session, moment, results, regions, instance_types)
        else:
            with err_console.status("Computing pool statistics..."):
                results = _stats(session, moment, regions, instance_types, product_description)
                risks = _risks(session, moment, results, regions, instance_types)
    evaluated_at = results[0].as_of if results else (moment or datetime.now(UTC))
    if output_format is OutputFormat.json:
        if any(stats.price_source == "sample" for stats in results):
            err_console.print(f"note: {SAMPLE_WARNING}", highlight=False)
        emit_json(_json(results, risks, evaluated_at))
        return
    if not results and not risks.unpriced:
        err_console.print(
            "No spot prices match. Fill the oracle first: `scheduler oracle sync --source aws` "
            "(or `--source sample`), or `scheduler oracle import FILE`; or widen --type/--region/"
            "--as-of.",
            highlight=False,
        )
        return
    if results:
        _print_table(results, risks, wide=wide)
    if risks.unpriced:
        _print_unpriced(risks.unpriced, evaluated_at)


def _stats(
    session: Session,
    moment: datetime | None,
    regions: list[str] | None,
    instance_types: list[str] | None,
    product_description: str,
) -> list[PoolStats]:
    # Imported here: the statistics pull in pandas, which `--help` does without.
    from oracle.stats import pool_stats

    return pool_stats(
        session,
        as_of=moment,
        regions=_split(regions),
        instance_types=_split(instance_types),
        product_description=product_description,
    )


@dataclass
class _Risks:
    """Each priced pool's estimate, and the observed pools that have no spot price."""

    by_pool: dict[tuple[str, str, str], PoolRisk]
    unpriced: list[PoolRisk]


def _risks(
    session: Session,
    moment: datetime | None,
    results: list[PoolStats],
    regions: list[str] | None,
    instance_types: list[str] | None,
) -> _Risks:
    from oracle.observations import pool_risk

    as_of = results[0].as_of if results else moment
    keys = [(s.region, s.zone, s.instance_type, "spot") for s in results]
    estimates = pool_risk(
        session,
        as_of=as_of,
        pools=keys,
        regions=_split(regions),
        instance_types=_split(instance_types),
    )
    priced = set(keys)
    return _Risks(
        by_pool={(k[0], k[1], k[2]): estimates[k] for k in keys},
        unpriced=sorted(
            (risk for key, risk in estimates.items() if key not in priced and key[3] == "spot"),
            key=lambda risk: risk.pool,
        ),
    )


def _json(results: list[PoolStats], risks: _Risks, as_of: datetime) -> list[dict[str, Any]]:
    from oracle.stats import PoolStats as PoolStatsType
    from oracle.stats import pool_stats_to_dict

    out = [
        {
            **pool_stats_to_dict(stats),
            **risk_to_dict(
                risks.by_pool[(stats.region, stats.zone, stats.instance_type)], as_of=as_of
            ),
        }
        for stats in results
    ]
    nothing: dict[str, Any] = {field.name: None for field in dataclasses.fields(PoolStatsType)}
    blank = PoolStatsType(**{**nothing, "as_of": as_of, "placement_scores": {}})
    keys = list(pool_stats_to_dict(blank))
    for risk in risks.unpriced:
        region, zone, instance_type, _market = risk.pool
        row: dict[str, Any] = dict.fromkeys(keys)
        row.update(
            region=region,
            zone=zone,
            instance_type=instance_type,
            as_of=as_of.isoformat(),
            placement_scores={},
            sample=False,
        )
        row.update(risk_to_dict(risk, as_of=as_of))
        out.append(row)
    return out


def _split(values: list[str] | None) -> list[str] | None:
    names = [name.strip() for value in values or () for name in value.split(",") if name.strip()]
    return names or None


def _print_table(results: list[PoolStats], risks: _Risks, *, wide: bool) -> None:
    sample = any(stats.price_source == "sample" for stats in results)
    as_of = results[0].as_of
    title = f"Spot pools as of {as_of:%Y-%m-%d %H:%M} UTC ($/h)"
    table = Table(
        title=f"{title} - {SAMPLE_WARNING.upper()}" if sample else title,
        caption=SAMPLE_WARNING if sample else None,
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    columns = WIDE_COLUMNS if wide else COMPACT_COLUMNS
    for name, _ in columns:
        table.add_column(name, justify="left" if name in TEXT_COLUMNS else "right", no_wrap=True)
    for stats in results:
        figures = _figures(stats, decimals=4 if wide else 3)
        risk = risks.by_pool[(stats.region, stats.zone, stats.instance_type)]
        figures.update(_risk_figures(risk, as_of))
        table.add_row(*(figures[key] for _, key in columns))
    if sample:
        console.print(f"[bold yellow]{SAMPLE_WARNING}[/]")
    console.print(table)
    ages = [stats.as_of - stats.price_observed_at for stats in results if stats.price_observed_at]
    sources = sorted({stats.price_source for stats in results if stats.price_source})
    if ages and not wide:
        console.print(
            f"Last price change {format_age(min(ages))} to {format_age(max(ages))} before "
            f"{as_of:%Y-%m-%d %H:%M} UTC; source: {', '.join(sources)}. --wide shows every "
            "figure, --format json every key.",
            highlight=False,
        )
    console.print(RISK_NOTE, highlight=False)


def _print_unpriced(unpriced: list[PoolRisk], as_of: datetime) -> None:
    table = Table(
        title=f"Observed spot pools without prices, as of {as_of:%Y-%m-%d %H:%M} UTC",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    columns = (("region", "region"), ("AZ", "zone"), ("type", "type"), *RISK_COLUMNS)
    for name, _ in columns:
        table.add_column(name, justify="left" if name in TEXT_COLUMNS else "right", no_wrap=True)
    for risk in unpriced:
        region, zone, instance_type, _market = risk.pool
        figures = {"region": region, "zone": zone, "type": instance_type}
        figures.update(_risk_figures(risk, as_of))
        table.add_row(*(figures[key] for _, key in columns))
    console.print(table)
    console.print(RISK_NOTE, highlight=False)


RISK_NOTE = (
    "loss/h: losses per hour of held capacity; launch (--wide): probability a launch succeeds; "
    "both are the Advisor band (prior) updated by the pool's observations (obs, age of newest)."
)
#: (header, key) of the risk columns, in both tables.
RISK_COLUMNS = (("loss/h", "hazard"), ("launch", "launch"), ("obs", "obs"), ("obs age", "obs_age"))


def _risk_figures(risk: PoolRisk, as_of: datetime) -> dict[str, str]:
    last = risk.evidence.last_observed_at
    return {
        "hazard": f"{risk.hazard_per_hour:.4f}",
        "launch": f"{100 * risk.availability:.1f}%",
        "obs": str(risk.evidence.observations),
        "obs_age": format_age(as_of - last) if last else "-",
    }


#: (header, key) of the default table: the AZ names its region.
COMPACT_COLUMNS = (
    ("AZ", "zone"),
    ("type", "type"),
    ("now", "now"),
    ("7d", "7d"),
    ("90d", "90d"),
    ("OD", "on_demand"),
    ("save", "save"),
    ("band", "band"),
    ("loss/h", "hazard"),
)
WIDE_COLUMNS = (
    ("region", "region"),
    ("AZ", "zone_with_id"),
    ("type", "type"),
    ("now", "now"),
    ("7d", "7d"),
    ("30d", "30d"),
    ("90d", "90d"),
    ("p95", "p95"),
    ("max", "max"),
    ("on-demand", "on_demand"),
    ("save", "save"),
    ("vol", "vol"),
    (">80% OD", "above_80"),
    ("chg", "changes"),
    ("scores", "scores"),
    ("band", "band"),
    ("source", "source"),
    ("age", "age"),
    *RISK_COLUMNS,
)
TEXT_COLUMNS = {"region", "AZ", "type", "scores", "band", "source"}


def _figures(stats: PoolStats, *, decimals: int) -> dict[str, str]:
    saving = None
    if stats.current_price_usd_per_hour is not None and stats.on_demand_price_usd_per_hour:
        saving = 1 - stats.current_price_usd_per_hour / stats.on_demand_price_usd_per_hour
    zone = stats.availability_zone or stats.zone
    zone_with_id = zone
    if stats.availability_zone_id and stats.availability_zone_id != zone:
        zone_with_id = f"{zone} ({stats.availability_zone_id})"
    age = format_age(stats.as_of - stats.price_observed_at) if stats.price_observed_at else "-"
    return {
        "region": stats.region,
        "zone": zone,
        "zone_with_id": zone_with_id,
        "type": stats.instance_type,
        "now": _price(stats.current_price_usd_per_hour, decimals),
        "7d": _price(stats.mean_price_usd_per_hour_7d, decimals),
        "30d": _price(stats.mean_price_usd_per_hour_30d, decimals),
        "90d": _price(stats.mean_price_usd_per_hour_90d, decimals),
        "p95": _price(stats.p95_price_usd_per_hour_90d, decimals),
        "max": _price(stats.max_price_usd_per_hour_90d, decimals),
        "on_demand": _price(stats.on_demand_price_usd_per_hour, decimals),
        "save": _percent(saving),
        "vol": _fraction(stats.volatility_90d),
        "above_80": _percent(stats.share_above_80pct_on_demand_90d),
        "changes": str(stats.changes_90d),
        "scores": " ".join(f"{c}:{s}" for c, s in stats.placement_scores.items()) or "-",
        "band": stats.interruption_band_label or "-",
        "source": stats.price_source or "-",
        "age": age,
    }


def _price(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
