"""`scheduler backtest --slo 500tok/s`: what each policy would have cost over the oracle's
history, and how often it would have missed the SLO."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from oracle.errors import InputError
from scheduler.cli.output import FormatOption, OutputFormat, console, emit_json, err_console
from scheduler.runtime import Runtime
from scheduler.slo import parse_slo
from scheduler.timeparse import parse_moment

if TYPE_CHECKING:
    from scheduler.backtest.simulate import BacktestResult
    from scheduler.config import Settings

HELP = (
    "Replay the oracle's price history tick by tick and compare what each scheduling policy "
    "would have cost and how often it would have missed the SLO.\n\n"
    "At every tick each policy sees only the facts known then (as `--as-of` does) and decides "
    "a fleet; instances start after a delay (billed, not serving), drain before they end, and "
    "are billed per second at the price in force. The world (--world) says when each spot pool "
    "has capacity: calibrated (default; fitted to real 2023 spot traces, scaled per pool by its "
    "Advisor band and price), traces (the real traces drive the pools they cover, by AZ name) "
    "or advisor (no capacity failures, Poisson interruptions). A launch into a pool without "
    "capacity fails and the policy replans; when capacity goes, running instances get the "
    "two-minute notice. Every policy faces the same world per seed; --seeds N gives means and "
    "95% confidence intervals.\n\n"
    # The names of scheduler.config.PolicyName, written out so that `--help` needs no pydantic
    # (tests/scheduler/cli/test_startup.py checks that they agree).
    "Policies: planner, planner-nohedge, on-demand, cheapest-zone, spot-hedge, price-capacity. "
    "Bounds: hindsight (knows prices), hindsight-hedged "
    "(the cheapest fleet surviving the loss of any AZ), hindsight-region (of any "
    "region), clairvoyant (knows capacity too). "
    "Exit codes: 0 done, 1 no instance type of the selection can serve the model, 2 bad "
    "input. Settings: the backtest section of config.toml."
)


def backtest(
    ctx: typer.Context,
    slo: Annotated[
        str,
        typer.Option(
            "--slo", help="Output tokens per second to sustain: 500tok/s.", show_default=False
        ),
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="Model served (default: planner.model).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start (ISO 8601; default: backtest.days before --to, or when 95% of the "
            "pools have a price if that is later).",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="End (ISO 8601; default: the newest price the oracle holds)."),
    ] = None,
    tick: Annotated[
        str | None,
        typer.Option("--tick", help="Decision interval: 15m, 900s, 1h (default: backtest.tick_s)."),
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option("--policies", help="Comma-separated policies (default: backtest.policies)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the interruptions (default: backtest.seed)."),
    ] = None,
    regions: Annotated[
        list[str] | None,
        typer.Option("--region", help="Replay only this region's pools (repeatable)."),
    ] = None,
    instance_types: Annotated[
        list[str] | None,
        typer.Option("--instance-type", help="Replay only this instance type (repeatable)."),
    ] = None,
    world: Annotated[
        str | None,
        typer.Option("--world", help="advisor, traces or calibrated (default: backtest.world)."),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", help="Worlds to replay, from --seed on (default: backtest.seeds)."),
    ] = None,
    trace_set: Annotated[
        str | None,
        typer.Option(
            "--trace-set",
            help="Trace set under backtest.trace_dir for --world traces (default: "
            "backtest.trace_set, aws-02-15-2023).",
        ),
    ] = None,
    untraced: Annotated[
        str | None,
        typer.Option(
            "--untraced",
            help="--world traces: pools without a trace are leave-out or calibrated.",
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="Replay the policies side by side in this many processes (each planner "
            "variant in one, the rest together; same figures; default: backtest.processes).",
        ),
    ] = None,
    availability_target: Annotated[
        str | None,
        typer.Option(
            "--availability-target",
            help="The planner's attainment target, e.g. 99.9% (default: "
            "planner.availability_target); it sizes the hedge under planner.hedge auto.",
        ),
    ] = None,
    hedge: Annotated[
        str | None,
        typer.Option(
            "--hedge",
            help="The planner's hedge: auto, az, region, two-az or none (default: planner.hedge).",
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Write PNG charts and index.html into this directory.", file_okay=False
        ),
    ] = None,
) -> None:
    # Imported here: the replay pulls in the planner and matplotlib, which `--help` and every
    # other command do without.
    from scheduler.backtest import report
    from scheduler.backtest.service import backtest as run_service
    from scheduler.backtest.service import parse_duration_s

    runtime: Runtime = ctx.obj
    settings = _with_planner(runtime.settings, availability_target=availability_target, hedge=hedge)
    if processes is not None:
        settings = settings.model_copy(
            update={"backtest": settings.backtest.model_copy(update={"processes": processes})}
        )
    slo_tokens_per_second = parse_slo(slo)
    names = [name.strip() for name in policies.split(",") if name.strip()] if policies else None
    tick_s = parse_duration_s(tick) if tick is not None else None
    moment_from = parse_moment(start, option="--from")
    moment_to = parse_moment(end, option="--to")
    with Progress(
        TextColumn("replaying"), BarColumn(), TextColumn("{task.completed}/{task.total} events"),
        TimeRemainingColumn(), console=err_console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("replay", total=None)
        result = run_service(
            runtime.engine,
            settings=settings,
            slo_tokens_per_second=slo_tokens_per_second,
            model=model,
            start=moment_from,
            end=moment_to,
            tick_s=tick_s,
            policies=names,
            seed=seed,
            regions=regions,
            instance_types=instance_types,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            world=world,
            seeds=seeds,
            trace_set=trace_set,
            untraced=untraced,
        )
    if report_dir is not None:
        written = report.write_report(result, report_dir)
        err_console.print(f"report: {written[-1]}", markup=False, highlight=False)
    if output_format is OutputFormat.json:
        emit_json(report.to_dict(result))
    else:
        print_result(result)


def _with_planner(
    settings: Settings, *, availability_target: str | None, hedge: str | None
) -> Settings:
    """The settings with the planner's --availability-target and --hedge applied."""
    from scheduler.cli.plan import HEDGES, parse_availability_target

    updates: dict[str, Any] = {}
    if availability_target is not None:
        updates["availability_target"] = parse_availability_target(availability_target)
    if hedge is not None:
        if hedge not in HEDGES:
            raise InputError(f"--hedge {hedge!r}: use one of {', '.join(HEDGES)}")
        updates["hedge"] = hedge
    if not updates:
        return settings
    return settings.model_copy(update={"planner": settings.planner.model_copy(update=updates)})


def print_result(result: BacktestResult) -> None:
    from scheduler.backtest import report

    """Two tables that each fit 80 columns: what each policy cost, and how it served."""
    options = result.options
    rows = report.policy_rows(result)
    window = (
        f"{options.model} at {options.slo_tokens_per_second:,.0f} tok/s, "
        f"{options.start:%Y-%m-%d %H:%M} to {options.end:%Y-%m-%d %H:%M} UTC"
    )
    several = len(result.all_seeds) > 1
    cost = _table(
        f"Cost: {window}",
        ("cost $", "95% CI" if several else "$/M tokens", "saving vs OD", "x hindsight"),
    )
    for row in rows:
        low, high = row["cost_usd_ci95"]
        cost.add_row(
            row["policy"],
            f"{row['cost_usd']:,.2f}",
            f"{low:,.0f}-{high:,.0f}"
            if several
            else _fmt(row["cost_usd_per_million_tokens"], "{:.4f}"),
            _fmt(row["saving_vs_on_demand_pct"], "{:.1f}%"),
            _fmt(row["cost_to_hindsight"], "{:.2f}"),
        )
    service = _table(
        "Service",
        (
            "SLO met",
            "95% CI" if several else "deficit tok",
            "interruptions",
            "no capacity",
            "launches",
        ),
    )
    for row in rows:
        low, high = row["slo_attainment_ci95"]
        service.add_row(
            row["policy"],
            f"{row['slo_attainment'] * 100:.2f}%",
            f"{low * 100:.2f}-{high * 100:.2f}%" if several else f"{row['deficit_tokens']:,.0f}",
            f"{row['interruptions']:g}",
            f"{row['launch_failures']:g}",
            f"{row['launches']:g}",
        )
    console.print(cost)
    console.print(service)
    console.print(_spend_table(rows))
    described = result.world.describe()
    console.print(
        f"world {described['name']}: {result.interruption_events} capacity losses or notices "
        f"(seed {options.seed}{f' and {len(result.all_seeds) - 1} more' if several else ''}); "
        f"tick {options.tick_s:g} s. Lower bounds, none paying for start-up: knowing every "
        "price (hindsight), also surviving the loss of any AZ (hindsight-hedged) or region "
        "(hindsight-region), also knowing capacity (clairvoyant).",
        highlight=False,
    )
    fitted = described.get("calibrated")
    if fitted:
        shock = fitted["global_shock"]
        console.print(
            "calibrated world (log-normal up/down runs, h): global shock median up "
            f"{shock['median_up_h']:g} down {shock['median_down_h']:g}, reach "
            f"{fitted['global_reach']:g}; region shocks "
            + ", ".join(
                f"{name} {runs['median_up_h']:g}/{runs['median_down_h']:g}"
                for name, runs in fitted["region_shocks"].items()
            )
            + "; own runs per AZ in --format json (world.calibrated.own); intensity k = "
            "rate(band) / rate(band 4) x price factor.",
            highlight=False,
        )


def _spend_table(rows: list[dict[str, Any]]) -> Table:
    """Where each policy's money went (:mod:`scheduler.backtest.spend`): serving spot and
    on-demand, start-ups (billed, not serving) and notices or drains, with instance-hours."""
    from scheduler.backtest import report

    table = _table(
        "Where the money went: USD serving on spot and on demand, starting up (billed, not "
        "serving), after serving (notice, drain); instance-hours",
        ("spot $", "OD $", "start $", "after $", "spot h", "OD h"),
    )
    for row in rows:
        spent = report.spend_summary(row)
        if spent is None:
            continue
        # The summary's figures in the columns' order.
        table.add_row(row["policy"], *(f"{value:,.0f}" for value in spent.values()))
    return table


def _table(title: str, figures: tuple[str, ...]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    table.add_column("policy", no_wrap=True)
    for column in figures:
        table.add_column(column, justify="right", no_wrap=True)
    return table


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
