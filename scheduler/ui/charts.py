"""Plotly figures (plain ``{"data": [...], "layout": {...}}`` dicts) for the dashboard's pages.

Every figure names its axes with their units and shows a legend; the page draws it with the
Plotly.js served from the ``plotly`` package (:mod:`scheduler.ui.pages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Colours that stay apart for readers with the common colour-vision deficiencies (Okabe-Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000")
KIND_SYMBOLS = {
    "interruption": "x",
    "rebalance": "triangle-up",
    "capacity-error": "square",
}


def figure(
    data: list[dict[str, Any]], *, x_title: str, y_title: str, **layout: Any
) -> dict[str, Any]:
    return {
        "data": data,
        "layout": {
            "xaxis": {"title": {"text": x_title}, "automargin": True},
            "yaxis": {"title": {"text": y_title}, "automargin": True, "rangemode": "tozero"},
            "showlegend": True,
            # Above the plot: below it, a long legend runs into the x axis's title.
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
            "margin": {"l": 60, "r": 20, "t": 10, "b": 40},
            "hovermode": "closest",
            "font": {"family": "system-ui, sans-serif", "size": 12},
            "paper_bgcolor": "rgba(0,0,0,0)",
            **layout,
        },
    }


#: Short names of the baselines (the page lists their full descriptions beside the chart).
BASELINE_NAMES = {
    "all_on_demand": "all on-demand",
    "cheapest_single_spot_pool": "one spot pool, no hedge",
    "cheapest_single_instance_type": "one instance type",
}


def plan_against_baselines(document: dict[str, Any]) -> dict[str, Any]:
    """The plan's expected cost beside each baseline on the same data (USD per hour)."""
    names = ["this plan"]
    costs = [document["cost_usd_per_hour"]]
    for key, baseline in document.get("baselines", {}).items():
        if baseline.get("cost_usd_per_hour") is not None:
            names.append(BASELINE_NAMES.get(key, key.replace("_", " ")))
            costs.append(baseline["cost_usd_per_hour"])
    bars = [
        {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "y": [name],
            "x": [cost],
            "marker": {"color": COLOURS[index % len(COLOURS)]},
            "hovertemplate": "$%{x:.2f}/h<extra>" + name + "</extra>",
        }
        for index, (name, cost) in enumerate(zip(names, costs, strict=True))
    ]
    return figure(
        bars,
        x_title="expected USD per hour",
        y_title="",
        barmode="overlay",
        yaxis={"automargin": True, "autorange": "reversed"},
        height=300,
    )


def savings_rates(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    times = [p["time"] for p in points]
    return figure(
        [
            _step("fleet (billed instances)", times, [p["actual_usd_per_hour"] for p in points], 0),
            _step(
                "all on-demand baseline",
                times,
                [p["on_demand_usd_per_hour"] for p in points],
                3,
                dash="dash",
            ),
        ],
        x_title="time (UTC)",
        y_title="USD per hour",
    )


def savings_cumulative(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    times = [p["time"] for p in points]
    return figure(
        [
            _line(
                "fleet (billed instances)", times, [p["cumulative_actual_usd"] for p in points], 0
            ),
            _line(
                "all on-demand baseline",
                times,
                [p["cumulative_on_demand_usd"] for p in points],
                3,
                dash="dash",
            ),
        ],
        x_title="time (UTC)",
        y_title="cumulative USD",
    )


def spot_prices(market: dict[str, Any]) -> dict[str, Any]:
    data = [
        _step(
            f"spot {series['availability_zone'] or series['zone']} ({series['zone']})",
            series["times"],
            series["prices_usd_per_hour"],
            index,
        )
        for index, series in enumerate(market["spot"])
    ]
    on_demand = market["on_demand"]
    if on_demand is not None and market["spot"]:
        edges = [min(s["times"][0] for s in market["spot"]), market["as_of"]]
        data.append(
            _line("on-demand", edges, [on_demand["price_usd_per_hour"]] * 2, 7, dash="dash")
        )
    return figure(data, x_title="time (UTC)", y_title="USD per instance-hour")


def placement_scores(market: dict[str, Any]) -> dict[str, Any]:
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "line": {"shape": "hv", "color": COLOURS[index % len(COLOURS)]},
            "name": f"{series['scope']}, {series['target_capacity']} instances",
            "x": series["times"],
            "y": series["scores"],
        }
        for index, series in enumerate(market["placement_scores"])
    ]
    return figure(
        data,
        x_title="time (UTC)",
        y_title="score (1 to 10)",
        yaxis={"title": {"text": "score (1 to 10)"}, "range": [0, 10.5], "automargin": True},
    )


def advisor_bands(market: dict[str, Any]) -> dict[str, Any]:
    points = market["advisor"]
    times = [p["observed_at"] for p in points] + ([market["as_of"]] if points else [])
    bands = [p["band_max_pct"] for p in points] + ([points[-1]["band_max_pct"]] if points else [])
    saving = [p["savings_pct"] for p in points] + ([points[-1]["savings_pct"]] if points else [])
    return figure(
        [
            _step("interruption band, upper bound (% per month)", times, bands, 3),
            _step("saving against on-demand (%)", times, saving, 2, dash="dot"),
        ],
        x_title="time (UTC)",
        y_title="percent",
    )


def hazard(series: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The learned interruption hazard per pool over time (losses per instance-hour)."""
    return figure(
        [
            _line(f"{s['zone']} ({s['source']})", s["times"], s["hazard_per_hour"], index)
            for index, s in enumerate(series)
        ],
        x_title="time (UTC)",
        y_title="losses per instance-hour",
    )


def pool_ranking(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pools by expected USD per hour per 1k tok/s (cheapest at the top), spot and on-demand
    apart."""
    data = []
    for index, market in enumerate(("spot", "on-demand")):
        chosen = [r for r in rows if r["market"] == market]
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": market,
                "y": [r["label"] for r in chosen],
                "x": [r["usd_per_hour_per_1k_tokens_per_second"] for r in chosen],
                "marker": {"color": COLOURS[index * 3]},
                "hovertemplate": "$%{x:.3f}/h per 1k tok/s<extra>%{y}</extra>",
            }
        )
    return figure(
        data,
        x_title="USD per hour per 1k output tok/s",
        y_title="",
        yaxis={"automargin": True, "autorange": "reversed", "type": "category"},
        height=max(260, 22 * len(rows) + 90),
    )


def timeline(events: Sequence[dict[str, Any]], *, start: Any, end: Any) -> dict[str, Any]:
    kinds = sorted({e["kind"] for e in events})
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": kind,
            "x": [e["time"] for e in events if e["kind"] == kind],
            "y": [e["pool"] for e in events if e["kind"] == kind],
            "text": [e["detail"] for e in events if e["kind"] == kind],
            "marker": {
                "symbol": KIND_SYMBOLS.get(kind, "circle"),
                "size": 10,
                "color": COLOURS[index % len(COLOURS)],
            },
            "hovertemplate": "%{x}<br>%{y}<br>%{text}<extra>" + kind + "</extra>",
        }
        for index, kind in enumerate(kinds)
    ]
    pools = sorted({e["pool"] for e in events})
    return figure(
        data,
        x_title="time (UTC)",
        y_title="",
        xaxis={"title": {"text": "time (UTC)"}, "range": [start, end], "automargin": True},
        yaxis={"type": "category", "automargin": True, "categoryarray": pools},
        height=max(260, 28 * len(pools) + 120),
    )


def _step(
    name: str, x: Sequence[Any], y: Sequence[Any], colour: int, *, dash: str = "solid"
) -> dict[str, Any]:
    trace = _line(name, x, y, colour, dash=dash)
    trace["line"]["shape"] = "hv"
    return trace


def _line(
    name: str, x: Sequence[Any], y: Sequence[Any], colour: int, *, dash: str = "solid"
) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": list(x),
        "y": list(y),
        "line": {"color": COLOURS[colour % len(COLOURS)], "dash": dash, "width": 2},
    }
