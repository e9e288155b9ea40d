"""A backtest's results as rows, JSON, PNG charts (matplotlib, Agg) and an HTML page.

``to_dict(result)["policies"]`` is keyed by policy name (and ``hindsight``), each with
``cost_usd``, ``cost_usd_per_million_tokens``, ``saving_vs_on_demand_pct`` (null without the
on-demand policy), ``slo_attainment`` (0 to 1), ``deficit_tokens`` (output tokens short of
the SLO rate) and ``deficit_token_hours`` (the same in tok/s x hours), ``interruptions``,
``launches``, ``cost_to_hindsight`` and ``planning_s``; and where the money went
(:mod:`scheduler.backtest.spend`): ``spend_usd`` (the bill by market and phase: ``spot_serving``,
``spot_starting``, ``spot_after_serving`` and the same for ``on_demand_``; they sum to
``cost_usd``) and ``pools`` (per pool: ``instance_hours``, ``cost_usd``, ``launches``,
``interruptions``, the costliest first). The bounds have no bill to split: ``spend_usd`` is
null and ``pools`` empty.

With several seeds (``--seeds N``) every figure is the mean over the seeds' worlds, and
``cost_usd_ci95`` and ``slo_attainment_ci95`` give the 95% confidence interval of the mean
(Student's t with N - 1 degrees of freedom; one seed: the value twice). ``launch_failures``
counts launches refused for want of capacity. The bounds ``hindsight``, ``hindsight-hedged``,
``hindsight-region`` and ``clairvoyant`` sit beside the policies; ``world`` holds the
world's name and parameters.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.backtest.simulate import BacktestResult
from scheduler.backtest.spend import SPEND_KEYS
from scheduler.config import HINDSIGHT

BOUNDS = ("hindsight-hedged", "hindsight-region", "clairvoyant")

CHARTS = (
    ("capacity.png", "Serving capacity against the SLO"),
    ("cumulative_cost.png", "Cumulative cost"),
    ("fleet_mix.png", "Instances billed by market"),
    ("cost_vs_attainment.png", "Cost against SLO attainment (mean, 95% CI)"),
    ("losses.png", "Capacity losses and launch failures"),
    ("deficits.png", "Deficit spells"),
)


def mean_ci95(values: list[float]) -> tuple[float, float, float]:
    """Mean and the 95% confidence interval of the mean (Student's t)."""
    from scipy import stats

    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if data.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, data.size - 1) * data.std(ddof=1) / np.sqrt(data.size))
    return mean, mean - half, mean + half


def policy_rows(result: BacktestResult) -> list[dict[str, Any]]:
    """One row per policy (means over the seeds, with 95% CIs), then the bounds."""
    seeds = result.all_seeds
    on_demand_cost = _mean_of(seeds, "on-demand", "cost_usd")
    hindsight = float(np.mean([r.hindsight_cost_usd for r in seeds]))
    rows = []
    for name in result.policies:
        cost, cost_low, cost_high = mean_ci95([r.policies[name].cost_usd for r in seeds])
        met, met_low, met_high = mean_ci95([r.policies[name].slo_attainment for r in seeds])
        served = _mean_of(seeds, name, "served_tokens") or 0.0
        deficit = _mean_of(seeds, name, "deficit_tokens") or 0.0
        rows.append(
            {
                "policy": name,
                "cost_usd": cost,
                "cost_usd_ci95": [cost_low, cost_high],
                "cost_usd_per_million_tokens": cost / served * 1e6 if served else None,
                "saving_vs_on_demand_pct": _saving(cost, on_demand_cost),
                "slo_attainment": met,
                "slo_attainment_ci95": [met_low, met_high],
                "deficit_tokens": deficit,
                "deficit_token_hours": deficit / 3600.0,
                "interruptions": _mean_of(seeds, name, "interruptions"),
                "launch_failures": _mean_of(seeds, name, "launch_failures"),
                "launches": _mean_of(seeds, name, "launches"),
                "cost_to_hindsight": cost / hindsight if hindsight > 0 else None,
                "planning_s": sum(r.policies[name].decide_s for r in seeds),
                "spend_usd": {
                    key: float(np.mean([r.policies[name].spend_usd[key] for r in seeds]))
                    for key in SPEND_KEYS
                },
                "pools": _pools(seeds, name),
            }
        )
    slo_tokens = result.slo_tokens
    bounds = {HINDSIGHT: [r.hindsight_cost_usd for r in seeds]}
    for name in BOUNDS:
        bounds[name] = [r.bounds_usd.get(name, float("nan")) for r in seeds]
    for name, values in bounds.items():
        cost, low, high = mean_ci95(values)
        rows.append(
            {
                "policy": name,
                "cost_usd": cost,
                "cost_usd_ci95": [low, high],
                "cost_usd_per_million_tokens": cost / slo_tokens * 1e6 if slo_tokens else None,
                "saving_vs_on_demand_pct": _saving(cost, on_demand_cost),
                "slo_attainment": 1.0,
                "slo_attainment_ci95": [1.0, 1.0],
                "deficit_tokens": 0.0,
                "deficit_token_hours": 0.0,
                "interruptions": 0,
                "launch_failures": 0,
                "launches": 0,
                "cost_to_hindsight": cost / hindsight if hindsight > 0 else None,
                "planning_s": 0.0,
                "spend_usd": None,
                "pools": [],
            }
        )
    return rows


def to_dict(result: BacktestResult) -> dict[str, Any]:
    options = result.options
    return {
        "model": options.model,
        "slo_tokens_per_second": options.slo_tokens_per_second,
        "from": options.start,
        "to": options.end,
        "tick_s": options.tick_s,
        "seed": options.seed,
        "seeds": len(result.all_seeds),
        "world": result.world.describe(),
        "interruption_events": result.interruption_events,
        "hindsight_cost_usd": result.hindsight_cost_usd,
        "policies": {row.pop("policy"): row for row in policy_rows(result)},
        "timing_s": dict(result.timing_s),
    }


def write_report(result: BacktestResult, directory: Path) -> list[Path]:
    """Write the charts and ``index.html`` into ``directory`` (created); return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    days = (result.tick_times_s - result.options.start.timestamp()) / 86_400.0
    written = []
    figure, axes = plt.subplots(figsize=(10, 4))
    for name, policy in result.policies.items():
        axes.step(days, policy.capacity_tokens_per_second, where="post", label=name, lw=0.8)
    axes.axhline(result.options.slo_tokens_per_second, color="black", ls="--", label="SLO")
    _finish(axes, "tok/s", "Serving capacity (ready instances x goodput)")
    written.append(_save(figure, directory / CHARTS[0][0], plt))

    figure, axes = plt.subplots(figsize=(10, 4))
    for name, policy in result.policies.items():
        axes.plot(days, policy.cumulative_cost_usd, label=name, lw=1.0)
    axes.plot(days, result.hindsight_cumulative_usd, label=HINDSIGHT, color="black", ls=":")
    _finish(axes, "USD", "Cumulative cost")
    written.append(_save(figure, directory / CHARTS[1][0], plt))

    names = list(result.policies)
    figure, grid = plt.subplots(len(names), 1, figsize=(10, 1.6 * max(len(names), 1) + 0.6),
                                sharex=True, squeeze=False)  # fmt: skip
    for axes, name in zip(grid[:, 0], names, strict=True):
        policy = result.policies[name]
        axes.stackplot(
            days,
            policy.spot_instances,
            policy.on_demand_instances,
            labels=["spot", "on-demand"],
            step="post",
        )
        axes.set_ylabel(name, fontsize=8)
    grid[0, 0].legend(loc="upper right", fontsize=8)
    grid[-1, 0].set_xlabel("days from the start")
    figure.suptitle("Instances billed, by market")
    written.append(_save(figure, directory / CHARTS[2][0], plt))

    rows = [row for row in policy_rows(result) if row["policy"] in result.policies]
    figure, axes = plt.subplots(figsize=(8, 5))
    for row in rows:
        cost, met = row["cost_usd"], row["slo_attainment"] * 100
        low, high = row["cost_usd_ci95"]
        met_low, met_high = (value * 100 for value in row["slo_attainment_ci95"])
        axes.errorbar(cost, met, xerr=[[cost - low], [high - cost]],
                      yerr=[[met - met_low], [met_high - met]], fmt="o", capsize=3,
                      label=row["policy"])  # fmt: skip
    axes.set_xlabel("cost (USD)")
    axes.set_ylabel("SLO attainment (%)")
    axes.set_title("Cost against SLO attainment (mean over seeds, 95% CI)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    written.append(_save(figure, directory / CHARTS[3][0], plt))

    figure, axes = plt.subplots(figsize=(10, 4))
    start_s = result.options.start.timestamp()
    for position, policy in enumerate(result.policies.values()):
        for kind, marker in (("interruption", "x"), ("launch-failure", "|")):
            times = [(o.at_s - start_s) / 86_400.0 for o in policy.observations if o.kind == kind]
            axes.scatter(times, [position] * len(times), marker=marker, s=16,
                         label=kind if position == 0 else None)  # fmt: skip
    axes.set_yticks(range(len(result.policies)), list(result.policies), fontsize=8)
    axes.set_xlabel("days from the start")
    axes.set_title("Capacity losses (x) and launch failures (|) each policy met (first seed)")
    written.append(_save(figure, directory / CHARTS[4][0], plt))

    figure, axes = plt.subplots(figsize=(8, 4))
    for name in result.policies:
        spells = np.concatenate([r.policies[name].deficit_spells_s for r in result.all_seeds])
        if spells.size:
            axes.hist(spells / 60.0, bins=30, histtype="step", label=name)
    axes.set_xlabel("deficit spell (minutes below the SLO)")
    axes.set_ylabel("spells (all seeds)")
    axes.set_title("Deficit durations")
    axes.legend(fontsize=8)
    written.append(_save(figure, directory / CHARTS[5][0], plt))

    page = directory / "index.html"
    page.write_text(_html(result))
    written.append(page)
    return written


# --- helpers ------------------------------------------------------------------------------


def spend_summary(row: dict[str, Any]) -> dict[str, float] | None:
    """A policy row's bill in six figures for a table: USD serving on spot and on demand,
    starting up and after serving (both markets), and instance-hours per market, in that
    order; None for a bound (no bill to split)."""
    spend = row["spend_usd"]
    if spend is None:
        return None
    hours = {"spot": 0.0, "on-demand": 0.0}
    for pool in row["pools"]:
        hours[pool["market"]] += pool["instance_hours"]
    return {
        "spot_serving": spend["spot_serving"],
        "on_demand_serving": spend["on_demand_serving"],
        "starting": spend["spot_starting"] + spend["on_demand_starting"],
        "after_serving": spend["spot_after_serving"] + spend["on_demand_after_serving"],
        "spot_hours": hours["spot"],
        "on_demand_hours": hours["on-demand"],
    }


def _pools(seeds: list[BacktestResult], name: str) -> list[dict[str, Any]]:
    """The policy's pools, each figure the mean over the seeds (a pool a seed did not use
    counts 0 there), the costliest first."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for seed in seeds:
        for spent in seed.policies[name].pools:
            row = rows.setdefault(
                tuple(spent.pool),
                {**spent.to_dict(), "instance_hours": 0.0, "cost_usd": 0.0, "launches": 0.0,
                 "interruptions": 0.0},
            )  # fmt: skip
            for figure in ("instance_hours", "cost_usd", "launches", "interruptions"):
                row[figure] += getattr(spent, figure) / len(seeds)
    return sorted(rows.values(), key=lambda row: -row["cost_usd"])


def _mean_of(seeds: list[BacktestResult], name: str, figure: str) -> float | None:
    if name not in seeds[0].policies:
        return None
    return float(np.mean([getattr(r.policies[name], figure) for r in seeds]))


def _saving(cost_usd: float, on_demand_cost: float | None) -> float | None:
    if on_demand_cost is None or on_demand_cost <= 0:
        return None
    return (1.0 - cost_usd / on_demand_cost) * 100.0


def _finish(axes: Any, unit: str, title: str) -> None:
    axes.set_xlabel("days from the start")
    axes.set_ylabel(unit)
    axes.set_title(title)
    axes.legend(fontsize=8, ncol=2)
    axes.grid(alpha=0.3)


def _save(figure: Any, path: Path, plt: Any) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _html(result: BacktestResult) -> str:
    options = result.options
    headers = [
        "policy",
        "cost (USD)",
        "USD / M tokens",
        "saving vs on-demand",
        "SLO attainment",
        "deficit (tokens)",
        "interruptions",
        "launches",
        "cost / hindsight",
    ]
    body = []
    rows = policy_rows(result)
    for row in rows:
        cells = [
            row["policy"],
            f"{row['cost_usd']:.2f}",
            _fmt(row["cost_usd_per_million_tokens"], "{:.4f}"),
            _fmt(row["saving_vs_on_demand_pct"], "{:.1f}%"),
            f"{row['slo_attainment'] * 100:.3f}%",
            f"{row['deficit_tokens']:.0f}",
            str(row["interruptions"]),
            str(row["launches"]),
            _fmt(row["cost_to_hindsight"], "{:.2f}"),
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    spend = _spend_html(rows)
    charts = "".join(
        f'<h2>{html.escape(title)}</h2><img src="{name}" alt="{html.escape(title)}">'
        for name, title in CHARTS
    )
    title = (
        f"Backtest of {options.model} at {options.slo_tokens_per_second:g} tok/s, "
        f"{options.start:%Y-%m-%d %H:%M} to {options.end:%Y-%m-%d %H:%M} UTC"
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}
td.pools{{text-align:left}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>World {html.escape(result.world.name)}, tick {options.tick_s:g} s, seeds {options.seed} to
{options.seed + len(result.all_seeds) - 1} (figures are means over the seeds; the chart of
cost against attainment shows their 95% confidence intervals); {result.interruption_events}
capacity losses or notices in the first seed's world. Four lower bounds, none paying for
start-up: hindsight (the cheapest fleet carrying the SLO knowing every price),
hindsight-hedged (the same, surviving the loss of any AZ), hindsight-region (surviving
the loss of any region) and clairvoyant (knowing capacity and interruptions too).</p>
<table><tr>{head}</tr>{"".join(body)}</table>{spend}{charts}</body></html>
"""


def _spend_html(rows: list[dict[str, Any]]) -> str:
    """Where each policy's money went: the bill by market and phase, and its costliest pools."""
    headers = ["policy", *(key.replace("_", " ") for key in SPEND_KEYS), "costliest pools"]
    body = []
    for row in rows:
        if row["spend_usd"] is None:
            continue
        pools = "; ".join(
            f"{p['instance_type']} {p['zone'] or p['region']} {p['market']}: "
            f"${p['cost_usd']:,.0f}, {p['instance_hours']:,.0f} h, "
            f"{p['interruptions']:g} interrupted"
            for p in row["pools"][:3]
        )
        cells = [row["policy"], *(f"{row['spend_usd'][key]:,.2f}" for key in SPEND_KEYS)]
        body.append(
            "<tr>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + f'<td class="pools">{html.escape(pools)}</td></tr>'
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return (
        "<h2>Where the money went (USD)</h2><p>Each instance's bill split into start-up "
        "(billed, not serving), serving, and after serving (an interruption's two-minute "
        "notice or a drain), by market; and the three pools that cost each policy most.</p>"
        f'<table id="spend"><tr>{head}</tr>{"".join(body)}</table>'
    )


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None or not np.isfinite(value) else pattern.format(value)
