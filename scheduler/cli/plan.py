"""`scheduler plan --slo 500tok/s`: the cheapest pool mix that meets the SLO, explained."""

from __future__ import annotations

import enum
import math
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from oracle.errors import InputError
from scheduler.cli.output import console, emit_json, err_console, format_age
from scheduler.runtime import Runtime
from scheduler.slo import parse_slo
from scheduler.timeparse import parse_moment

if TYPE_CHECKING:
    from scheduler.config import PlannerConfig
    from scheduler.planner import Plan

HELP = (
    "Plan the cheapest mix of region, availability zone, instance type and market (spot or "
    "on-demand) that serves the model at the throughput SLO, and say why.\n\n"
    "One exact MILP over every pool: expected hourly cost (spot price estimate plus the expected "
    "cost of interruptions, at each pool's hazard learned from the Spot Advisor band and what was "
    "observed of the pool: `scheduler oracle stats`) subject to the SLO, the hedge (the SLO "
    "still holds after losing all spot capacity in any one AZ, any two AZs or a region; by "
    "default the AZ, deepened only where the estimated attainment misses the target), "
    "placement-score caps, "
    "vCPU quotas, filters and the budget. Prints the plan, the binding constraints, the baselines "
    "it beat on the same data (all on-demand, the cheapest single spot pool, the cheapest single "
    "instance type), and the source and age of its data.\n\n"
    "On an empty oracle it first loads the embedded SAMPLE market and reference goodput figures, "
    "and says so. Exit codes: 0 planned, 1 no plan meets the SLO (the message says which "
    "constraint stops it and how to relax it), 2 bad input."
)


class PlanFormat(enum.StrEnum):
    table = "table"
    json = "json"
    fleet = "fleet"
    skypilot = "skypilot"


def plan(
    ctx: typer.Context,
    slo: Annotated[
        str,
        typer.Option(
            "--slo",
            help="Output tokens per second to sustain: 500tok/s, '1.5k tok/s'.",
            show_default=False,
        ),
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="Model served (default: planner.model).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Plan on the data as known then (ISO 8601; UTC if no zone)."),
    ] = None,
    output_format: Annotated[
        PlanFormat,
        typer.Option(
            "--format",
            help="table for people; json (documented keys); fleet (one EC2 CreateFleet request "
            "per pool, each with the `aws ec2 create-fleet --region ...` command that sends it); "
            "skypilot (a sky serve YAML).",
        ),
    ] = PlanFormat.table,
    hedge: Annotated[
        str | None,
        typer.Option(
            "--hedge",
            help="auto, az, region, two-az or none (default: planner.hedge). auto hedges by AZ "
            "and deepens to two-az or region only where the pools' learned risk misses "
            "--availability-target; the others fix the depth.",
        ),
    ] = None,
    availability_target: Annotated[
        str | None,
        typer.Option(
            "--availability-target",
            help="Share of time the plan should carry the SLO, e.g. 99.9% or 0.999 "
            "(default: planner.availability_target); sizes the hedge under --hedge auto.",
        ),
    ] = None,
    markets: Annotated[
        str | None,
        typer.Option("--markets", help="any, spot or on-demand (default: planner.markets)."),
    ] = None,
    regions: Annotated[
        list[str] | None,
        typer.Option("--region", help="Allow only this region (repeatable)."),
    ] = None,
    instance_types: Annotated[
        list[str] | None,
        typer.Option("--instance-type", help="Allow only this instance type (repeatable)."),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option("--budget", help="Budget cap in USD per hour (default: planner's; 0 none)."),
    ] = None,
    headroom: Annotated[
        float | None,
        typer.Option("--headroom", help="Extra capacity above the SLO, as a fraction (0.1)."),
    ] = None,
    candidates: Annotated[
        bool,
        typer.Option(
            "--candidates",
            help="Also print every candidate pool (price, interruption and expected cost, "
            "goodput, cap and why), the limits (quotas with their source, pool share, budget, "
            "headroom) and how the MILP was solved: enough to re-check the plan by hand. "
            "The JSON always holds them (keys candidates, limits, solver).",
        ),
    ] = False,
    workload: Annotated[
        str | None,
        typer.Option(
            "--workload",
            help="Plan for a request mix: a preset (chat, rag, summarize, codegen), a ShareGPT "
            "JSON file or a histogram CSV (input_tokens,output_tokens,count). Each (input x "
            "output length) bucket's share of the SLO is split over the pools by their "
            "goodput on that bucket (measured by `scheduler bench run --workload`, else "
            "estimated), the hedge holds for the whole mix, and the plan says which buckets "
            "each pool serves. Without it: one goodput number per instance type.",
        ),
    ] = None,
) -> None:
    # Imported here: the planner pulls in scipy and pandas, which `--help` does without.
    from scheduler.planner import make_plan
    from scheduler.planning.load import ensure_planning_data

    runtime: Runtime = ctx.obj
    slo_tokens_per_second = parse_slo(slo)
    moment = parse_moment(as_of, option="--as-of", example="2026-11-01T12:00:00Z")
    config = _config(
        runtime.settings.planner,
        hedge=hedge,
        availability_target=availability_target,
        markets=markets,
        regions=regions,
        instance_types=instance_types,
        budget=budget,
        headroom=headroom,
    )
    model_name = model or config.model
    engine = runtime.engine
    with err_console.status("Checking the oracle..."):
        notes = ensure_planning_data(engine, settings=runtime.settings, model=model_name)
    for note in notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    with err_console.status(f"Planning {model_name} at {slo_tokens_per_second:,.0f} tok/s..."):
        result = make_plan(
            engine,
            config=config,
            slo_tokens_per_second=slo_tokens_per_second,
            model=model_name,
            as_of=moment,
            workload=workload,
        )
    if output_format is PlanFormat.json:
        emit_json(result.to_dict())
    elif output_format is PlanFormat.fleet:
        from scheduler.planning.formats import fleet_export

        emit_json(fleet_export(result))
    elif output_format is PlanFormat.skypilot:
        from scheduler.planning.formats import skypilot_yaml  # PyYAML, for this format only

        sys.stdout.write(skypilot_yaml(result))
    else:
        print_plan(result)
        if candidates:
            print_candidates(result.to_dict())


def print_plan(plan: Plan) -> None:
    """The plan for people: allocations, totals, why, baselines, data and warnings."""
    table = Table(
        title=f"{plan.model} at {plan.slo_tokens_per_second:,.0f} tok/s (hedge: {plan.hedge})",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    # Two-line headers keep the table within 80 columns.
    # The AZ names its region; on-demand pools are regional and show the region.
    for column in ("AZ or\nregion", "instance\ntype", "market"):
        table.add_column(column, no_wrap=True)
    for column in ("count", "tok/s\neach", "$/h\neach", "$/h\ntotal"):
        table.add_column(column, justify="right", no_wrap=True)
    for a in plan.allocations:
        table.add_row(
            _zone(a),
            a.pool.instance_type,
            a.pool.market,
            str(a.count),
            f"{a.tokens_per_second_each:,.0f}",
            f"{a.price_usd_per_hour_each:.4f}",
            f"{a.count * a.expected_cost_usd_per_hour_each:,.2f}",
        )
    console.print(table)
    if plan.workload is not None:
        shares = ", ".join(
            f"{name} {share:.0%}" for name, share in plan.workload["buckets"].items()
        )
        console.print(
            f"Workload {plan.workload['workload_id']} ({plan.workload['source']}): {shares} of "
            "the output tokens; tok/s each is the pool's best bucket, totals are in the mix's "
            "proportions.",
            markup=False,
            highlight=False,
        )
    console.print(
        f"Total: {sum(a.count for a in plan.allocations)} instances, "
        f"{plan.tokens_per_second:,.0f} tok/s for ${plan.cost_usd_per_hour:,.2f}/h expected "
        f"(prices ${plan.price_usd_per_hour:,.2f}/h + interruptions "
        f"${plan.interruption_usd_per_hour:,.4f}/h); ${plan.usd_per_million_tokens:,.3f} per "
        "million output tokens at the SLO rate.",
        highlight=False,
    )
    after = f"{plan.tokens_per_second_after_worst_loss:,.0f} tok/s"
    lost = f" (losing the spot capacity of {plan.worst_loss})" if plan.worst_loss else ""
    console.print(f"After the worst loss{lost}: {after}.", highlight=False)
    if plan.estimated_attainment is not None and plan.availability_target is not None:
        console.print(
            f"Estimated SLO attainment {100 * plan.estimated_attainment:.3f}% (target "
            f"{100 * plan.availability_target:.3f}%), expected deficit "
            f"{plan.expected_deficit_tokens_per_second:,.2f} tok/s priced at "
            f"${plan.deficit_usd_per_hour:,.4f}/h. Hedge {plan.hedge}: {plan.hedge_reason}.",
            highlight=False,
        )
    if plan.switching_usd_per_hour:
        console.print(
            f"Switching from the running fleet: ${plan.switching_usd_per_hour:,.4f}/h amortised."
        )
    console.print("\n[bold]Why these pools[/bold]")
    for a in plan.allocations:
        score = "none (capped by default)" if a.placement_score is None else a.placement_score
        serves = (
            "; serves " + ", ".join(f"{name} {tps:,.0f} tok/s" for name, tps in a.buckets.items())
            if a.buckets
            else ""
        )
        console.print(
            f"  - {a.pool.instance_type} {a.pool.market} in {_zone(a)}: "
            f"${a.usd_per_hour_per_tokens_per_second * 1000:.3f}/h per 1k tok/s, "
            f"interruptions {a.interruption_band or 'n/a'}, placement score {score}{serves}",
            markup=False,
            highlight=False,
        )
    if plan.binding:
        console.print("\n[bold]Binding constraints[/bold]")
        for binding in plan.binding:
            console.print(f"  - {binding.explanation}", markup=False, highlight=False)
    if plan.baselines:
        console.print("\n[bold]Baselines on the same data[/bold]")
        for baseline in plan.baselines.values():
            console.print(f"  - {_baseline_line(baseline)}", markup=False, highlight=False)
    if plan.data:
        console.print("\n[bold]Data[/bold]")
        for age in plan.data:
            if age.age_hours is None:
                hours = "age unknown"
            elif age.age_hours < 0:
                hours = "recorded after the --as-of time"
            else:
                hours = f"{format_age(timedelta(hours=age.age_hours))} old"
            console.print(
                f"  - {age.kind}: {', '.join(age.sources) or 'unknown'}, {hours}",
                markup=False,
                highlight=False,
            )
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def print_candidates(document: dict[str, Any]) -> None:
    """The candidate pools, cheapest per tok/s first, then the limits and the solver."""
    rows = sorted(
        document["candidates"],
        key=lambda c: (c["expected_cost_usd_per_hour_each"] / c["tokens_per_second_each"],
                       c["region"], c["zone"], c["instance_type"], c["market"]),
    )  # fmt: skip
    table = Table(
        title=f"{len(rows)} candidate pools, cheapest per tok/s first (USD per hour)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("pool", no_wrap=True)
    for column in ("tok/s\neach", "price\neach", "interr.\neach", "expected\neach",
                   "per 1k\ntok/s", "cap"):  # fmt: skip
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("cap reason", no_wrap=True)
    for c in rows:
        where = c["zone"] or c["region"]
        table.add_row(
            f"{c['instance_type']} {c['market']} {where}",
            f"{c['tokens_per_second_each']:,.0f}",
            f"{c['price_usd_per_hour_each']:.4f}",
            f"{c['interruption_cost_usd_per_hour_each']:.4f}",
            f"{c['expected_cost_usd_per_hour_each']:.4f}",
            f"{c['expected_cost_usd_per_hour_each'] / c['tokens_per_second_each'] * 1000:.3f}",
            "-" if c["cap"] is None else f"{c['cap']:g}",
            _short_reason(c["cap_reason"]),
        )
    # One row per pool reads best unwrapped: at least 120 columns, wider on a wide terminal.
    Console(width=max(console.width, 120)).print(table)
    limits = document["limits"]
    budget = limits["budget_usd_per_hour"]
    console.print("\n[bold]Limits[/bold]")
    for line in (
        f"SLO {limits['slo_tokens_per_second']:,.0f} tok/s, required "
        f"{limits['required_tokens_per_second']:,.0f} tok/s (headroom "
        f"{limits['headroom_fraction']:g}); hedge: {limits['hedge']}",
        f"max pool share {limits['max_pool_share']:g}; budget "
        + ("none" if budget is None else f"${budget:,.2f}/h"),
    ):
        console.print(f"  - {line}", markup=False, highlight=False)
    by_limit: dict[tuple[str, float, str], list[str]] = {}
    for quota in limits["quotas"]:
        key = (quota["quota_code"], quota["limit_vcpus"], quota["source"])
        by_limit.setdefault(key, []).append(quota["region"])
    for (code, limit, source), regions in sorted(by_limit.items()):
        console.print(
            f"  - quota {code}: {limit:,.0f} vCPUs ({source}) in {', '.join(sorted(regions))}",
            markup=False,
            highlight=False,
        )
    solver = document["solver"]
    console.print(
        f"\n[bold]Solver[/bold]: {solver['backend']}, MIP gap {solver['mip_gap']:.2g}, "
        f"{solver['solve_s']:.3f} s, optimality "
        + ("proven" if solver["proven_optimal"] else "NOT proven"),
        highlight=False,
    )


def _short_reason(reason: str) -> str:
    """``placement score 6; quota L-DB2E81BA in us-east-1: 1024 vCPUs`` -> ``score 6, quota``
    (the limits below give each quota's figures)."""
    words = []
    for part in reason.split("; "):
        if part.startswith("placement score"):
            words.append(part.replace("placement ", ""))
        elif part.startswith("quota"):
            words.append(part.split(" in ")[0])
        elif part.startswith("no placement score"):
            words.append("default cap")
        elif part.startswith("pool share"):
            words.append("pool share")
        else:
            words.append(part)
    return ", ".join(words)


def _zone(allocation: Any) -> str:
    return str(allocation.availability_zone or allocation.pool.zone or allocation.pool.region)


def _baseline_line(baseline: Any) -> str:
    if baseline.cost_usd_per_hour is None:
        return f"{baseline.description}: no such plan on this data"
    line = f"{baseline.description}: ${baseline.cost_usd_per_hour:,.2f}/h"
    if baseline.saving_usd_per_hour is not None and abs(baseline.saving_usd_per_hour) < 0.005:
        return line + "; the same cost as this plan"
    if baseline.saving_usd_per_hour is not None:
        verb = "saves" if baseline.saving_usd_per_hour >= 0 else "costs"
        line += (
            f"; this plan {verb} ${abs(baseline.saving_usd_per_hour):,.2f}/h "
            f"({abs(baseline.saving_pct or 0):.1f}%){'' if verb == 'saves' else ' more'}"
        )
    return line


HEDGES = ("auto", "az", "region", "two-az", "none")


def parse_availability_target(text: str) -> float:
    """``99.9%`` or ``0.999`` as a share in (0, 1); InputError naming the option otherwise."""
    value = text.strip()
    try:
        share = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        share = math.nan
    if not 0 < share < 1:
        raise InputError(
            f"--availability-target: {text!r} is not a share of time below 100%; "
            "write e.g. 99.9% or 0.999"
        )
    return share


def _config(
    base: PlannerConfig,
    *,
    hedge: str | None,
    availability_target: str | None = None,
    markets: str | None,
    regions: list[str] | None,
    instance_types: list[str] | None,
    budget: float | None,
    headroom: float | None,
) -> PlannerConfig:
    from scheduler.config import MAX_BUDGET_USD_PER_HOUR, MAX_HEADROOM_FRACTION

    updates: dict[str, Any] = {}
    if hedge is not None:
        updates["hedge"] = _choice("--hedge", hedge, HEDGES)
    if availability_target is not None:
        updates["availability_target"] = parse_availability_target(availability_target)
    if markets is not None:
        updates["markets"] = _choice("--markets", markets, ("any", "spot", "on-demand"))
    if regions:
        updates["regions_allow"] = list(regions)
    if instance_types:
        updates["instance_types_allow"] = list(instance_types)
    if budget is not None:
        if not 0 <= budget <= MAX_BUDGET_USD_PER_HOUR:
            raise InputError(
                f"--budget {budget}: write 0 (none) or USD per hour up to "
                f"{MAX_BUDGET_USD_PER_HOUR:,.0f}"
            )
        updates["budget_usd_per_hour"] = budget
    if headroom is not None:
        if not 0 <= headroom <= MAX_HEADROOM_FRACTION:
            raise InputError(
                f"--headroom {headroom}: write a fraction from 0 to {MAX_HEADROOM_FRACTION:g}, "
                "e.g. 0.1"
            )
        updates["headroom_fraction"] = headroom
    return base.model_copy(update=updates)


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"{option} {value!r}: use one of {', '.join(allowed)}")
    return value
