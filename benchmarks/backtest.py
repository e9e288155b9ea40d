"""Benchmark of the backtest (not a test).

    python -m benchmarks.backtest [--days 90] [--tick-s 900] [--slo 5000] [--regions R1,R2]

The embedded sample market over its full GPU universe (every type of the catalog in every region
and AZ) is ingested into a fresh SQLite oracle (the replay's days plus 10 days of lead-in, so the
first tick has a week of history), with the reference and estimated goodput of the default
model. Then:

1. Loading the history into memory (once).
2. The replay of ``--days`` days at ``--tick-s`` of every policy, the planner's two included
   (they replan every ``backtest.planner_interval_s`` and on interruptions, and keep the fleet
   without solving when a cost bound shows no plan saves the rebalancer's thresholds): seconds
   per simulated day, split into the views (the market as of each event), deciding, and
   measuring; each policy's deciding time; the ratio to the goal (all policies, 90 days at
   15-minute ticks, under two minutes).

``--regions`` narrows the replay (the market every policy sees) to some regions, as a user
would (``scheduler backtest --region``).

Figures are wall-clock on this machine; the load average is printed beside them: on a shared
machine read the ratios rather than the absolute figures.

This script stands outside the harness's layering (``bench`` imports only ``oracle``): it
measures the scheduler's backtest, so it imports ``scheduler``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oracle import db
from oracle.goodput import best_goodput
from oracle.reference import DEFAULT_MODEL, ensure_goodput_figures
from oracle.sample import ingest_sample
from scheduler.backtest.market import MarketHistory
from scheduler.backtest.simulate import BacktestOptions, run_backtest
from scheduler.config import POLICY_NAMES, Settings

GOAL_S = 120.0
#: A fixed end, so that runs compare: the sample market is a function of absolute time.
END = datetime(2026, 6, 1, tzinfo=UTC)
LEAD_IN_DAYS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tick-s", type=float, default=900.0)
    parser.add_argument("--slo", type=float, default=5000.0, help="tok/s")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--regions", default="", help="comma-separated regions to replay (default: all)"
    )
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as directory:
        engine = db.make_engine(f"sqlite:///{Path(directory) / 'bench.sqlite3'}")
        db.upgrade(engine)
        started = time.perf_counter()
        counts = ingest_sample(engine, seed=args.seed, days=args.days + LEAD_IN_DAYS, end=END)
        ensure_goodput_figures(engine, model=DEFAULT_MODEL)
        print(
            f"sample market: {counts['spot_prices']:,} spot price rows, "
            f"{counts['offerings']} pools, ingested in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        regions = [name for name in args.regions.split(",") if name] or None
        history = MarketHistory.load(engine, regions=regions)
        load_s = time.perf_counter() - started
        with db.session_factory(engine)() as session:
            goodput = best_goodput(session, model=DEFAULT_MODEL)
        engine.dispose()
    print(f"history loaded once in {load_s:.1f} s ({len(history.pools)} spot pools)")
    print(f"load average: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")

    start = END - timedelta(days=args.days)
    policies = POLICY_NAMES
    options = BacktestOptions(
        slo_tokens_per_second=args.slo,
        start=start,
        end=END,
        tick_s=args.tick_s,
        policies=policies,
        model=DEFAULT_MODEL,
        seed=args.seed,
        planner_interval_s=settings.backtest.planner_interval_s,
        rebalance_min_saving_pct=settings.jobs.rebalance_min_saving_pct,
        rebalance_min_saving_usd_per_hour=settings.jobs.rebalance_min_saving_usd_per_hour,
        planner=settings.planner,
    )
    result = run_backtest(history, goodput=goodput, options=options)
    timing = result.timing_s
    total = timing["total"]
    ticks = len(result.tick_times_s)
    print(
        f"\nreplay of {', '.join(policies)}: {args.days} days, {ticks:,} ticks, "
        f"{result.interruption_events} interruption events"
    )
    print(
        f"  total {total:.1f} s = {total / args.days:.3f} s per simulated day; "
        f"views {timing['views']:.1f} s, deciding {timing['planning']:.1f} s "
        f"({timing['planning'] / total:.0%}), interruptions {timing['interruptions']:.1f} s, "
        f"measuring {timing['measure']:.1f} s"
    )
    for name, policy in result.policies.items():
        print(
            f"  {name:<16} deciding {policy.decide_s:7.2f} s  cost ${policy.cost_usd:,.0f}  "
            f"SLO met {policy.slo_attainment:.2%}  interruptions {policy.interruptions}  "
            f"launches {policy.launches}"
        )
    print(f"  hindsight bound ${result.hindsight_cost_usd:,.0f}")

    ninety = total * 90.0 / args.days
    print(
        f"\nall policies over 90 days: {ninety:,.1f} s"
        + (f" (measured over {args.days} days, scaled)" if args.days != 90 else "")
        + f"; ratio to the goal ({GOAL_S:.0f} s): {ninety / GOAL_S:.2f}; share of time in "
        f"planning: {timing['planning'] / total:.0%}"
    )
    print(f"load average after: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
