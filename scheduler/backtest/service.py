"""The backtest as a service function: options from the configuration and the command line,
the oracle's history loaded once, the replay run. The command line is a thin layer over this."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine

from oracle import db
from oracle.errors import InputError
from oracle.goodput import best_goodput
from oracle.reference import DEFAULT_MODEL, ensure_goodput_figures
from scheduler.backtest.interruptions import InterruptionModel
from scheduler.backtest.market import MarketHistory
from scheduler.backtest.simulate import BacktestOptions, BacktestResult, run_backtest
from scheduler.backtest.world import WORLD_NAMES, WorldOptions
from scheduler.config import POLICY_NAMES, Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86_400.0}


def backtest(
    engine: Engine,
    *,
    settings: Settings,
    slo_tokens_per_second: float,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    tick_s: float | None = None,
    policies: Sequence[str] | None = None,
    seed: int | None = None,
    regions: Sequence[str] | None = None,
    instance_types: Sequence[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    world: str | None = None,
    seeds: int | None = None,
    trace_set: str | None = None,
    untraced: str | None = None,
) -> BacktestResult:
    """Replay the oracle's history for ``policies``; the default window is the last
    ``backtest.days`` days the oracle holds, from when 95% of its pools have a price.
    ``regions`` and ``instance_types`` narrow the market every policy sees (default: all)."""
    config = settings.backtest
    chosen = tuple(policies) if policies else tuple(config.policies)
    unknown = [name for name in chosen if name not in POLICY_NAMES]
    if unknown:
        raise InputError(
            f"--policies: unknown policy {unknown[0]!r}; choose from {', '.join(POLICY_NAMES)}"
        )
    model_name = model or settings.planner.model
    history = MarketHistory.load(
        engine,
        regions=regions,
        instance_types=instance_types,
        product_description=settings.oracle.product_description,
        operating_system=settings.oracle.operating_system,
    )
    if history.last_s is None or history.first_s is None:
        if regions or instance_types:
            raise InputError(
                "the oracle holds no spot price history for --region "
                f"{','.join(regions or ['any'])} and --instance-type "
                f"{','.join(instance_types or ['any'])}; widen them or fill the oracle first"
            )
        raise InputError(
            "the oracle holds no spot price history to replay; fill it first with "
            "`scheduler oracle sync` (or `--source sample`) or `scheduler oracle import FILE`"
        )
    with db.session_factory(engine)() as session:
        goodput = best_goodput(session, model=model_name)
    if not goodput:
        # As `scheduler plan` does on first use: published and estimated figures (the default
        # model's references anchor another model's estimates).
        ensure_goodput_figures(engine, model=DEFAULT_MODEL)
        ensure_goodput_figures(engine, model=model_name)
        with db.session_factory(engine)() as session:
            goodput = best_goodput(session, model=model_name)
    replayed = {p.instance_type for p in history.pools} | {k[1] for k in history.on_demand}
    goodput = {name: fact for name, fact in goodput.items() if name in replayed}
    if not goodput:
        raise NoServingTypeError(
            f"no instance type in the selection can serve {model_name}: "
            f"{', '.join(sorted(replayed)[:5])}{' ...' if len(replayed) > 5 else ''} "
            "have no goodput figure for it (its weights and KV cache do not fit their GPU "
            "memory, or nothing was measured); choose larger types with --instance-type, or "
            "a smaller --model"
        )
    world_name = world or config.world
    if world_name not in WORLD_NAMES:
        raise InputError(f"--world {world_name!r}: choose one of {', '.join(WORLD_NAMES)}")
    untraced_name = untraced or config.untraced
    if untraced_name not in ("leave-out", "calibrated"):
        raise InputError(f"--untraced {untraced_name!r}: choose leave-out or calibrated")
    window_end = end or _datetime(history.last_s)
    window_start = start or max(window_end - timedelta(days=config.days), _priced_from(history))
    if window_start >= window_end:
        raise InputError(
            f"--from {window_start.isoformat()} is not before --to {window_end.isoformat()}; "
            "pass a window inside the oracle's history"
        )
    options = configured_options(
        settings,
        slo_tokens_per_second=slo_tokens_per_second,
        start=window_start,
        end=window_end,
        tick_s=tick_s or config.tick_s,
        policies=chosen,
        model=model_name,
        seed=config.seed if seed is None else seed,
        world=WorldOptions(
            name=world_name,
            trace_dir=config.trace_dir,
            trace_set=trace_set if trace_set is not None else config.trace_set,
            untraced=untraced_name,
        ),
    )
    count = seeds if seeds is not None else config.seeds
    if count < 1:
        raise InputError(f"--seeds {count}: pass a positive number of worlds to replay")
    results = [
        run_backtest(
            history,
            goodput=goodput,
            options=replace(options, seed=options.seed + number),
            on_progress=on_progress,
        )
        for number in range(count)
    ]
    first = results[0]
    first.other_seeds = results[1:]
    return first


class NoServingTypeError(InputError):
    """No instance type of the selection can serve the model: exit code 1 (a fact about the
    market, not a typing mistake)."""

    exit_code = 1


def parse_duration_s(text: str, *, option: str = "--tick") -> float:
    """``15m``, ``900s``, ``900``, ``1h``, ``1d`` -> seconds; anything else is refused."""
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"] if match else 0.0
    if seconds <= 0:
        raise InputError(f"{option} {text!r} is not a positive duration: use e.g. 15m, 900s, 1h")
    return seconds


def _priced_from(history: MarketHistory) -> datetime:
    """When 95% of the pools have a price: a history that opens with no price in force (one
    without DescribeSpotPriceHistory's opening records) shows each pool only from its first
    change, and a replay starting earlier would choose among the few pools priced so far."""
    first_s = history.times_s[history.offsets[:-1]]
    return _datetime(float(np.quantile(first_s, 0.95, method="lower")))


def _datetime(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def configured_options(
    settings: Settings,
    *,
    slo_tokens_per_second: float,
    start: datetime,
    end: datetime,
    tick_s: float,
    policies: tuple[str, ...],
    model: str,
    seed: int,
    world: WorldOptions,
) -> BacktestOptions:
    """The replay's options: this run's choices, the rest from ``[backtest]``, the rebalancer's
    thresholds (``[jobs]``), the executor's on-demand fallback (``[service]``) and the
    planner's settings."""
    config = settings.backtest
    return BacktestOptions(
        slo_tokens_per_second=slo_tokens_per_second,
        start=start,
        end=end,
        tick_s=tick_s,
        policies=policies,
        model=model,
        seed=seed,
        startup_s=config.startup_s,
        drain_s=config.drain_s,
        planner_interval_s=config.planner_interval_s,
        avoid_after_interruption_s=config.avoid_after_interruption_s,
        rebalance_min_saving_pct=settings.jobs.rebalance_min_saving_pct,
        rebalance_min_saving_usd_per_hour=settings.jobs.rebalance_min_saving_usd_per_hour,
        rebalance_min_dwell_s=settings.jobs.rebalance_min_dwell_s,
        rebalance_max_actions=settings.jobs.rebalance_max_actions,
        interruptions=InterruptionModel(
            rate_scale=config.interruption_rate_scale,
            near_on_demand_fraction=config.near_on_demand_fraction,
            at_on_demand_multiplier=config.at_on_demand_multiplier,
            unknown_band_index=config.unknown_band_index,
            traces={key: Path(value).expanduser() for key, value in config.traces.items()},
        ),
        planner=settings.planner,
        world=world,
        processes=config.processes,
        on_demand_fallback=settings.service.on_demand_fallback,
    )
