"""Drawing the world of one seed for a history (see :mod:`scheduler.backtest.world`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import numpy as np

from oracle.errors import InputError
from scheduler.backtest import calibrated, traces
from scheduler.backtest.interruptions import InterruptionModel, intensity_path, sample_interruptions
from scheduler.backtest.market import MarketHistory
from scheduler.backtest.world import (
    DownIntervals,
    World,
    WorldOptions,
    from_down_intervals,
)
from scheduler.planning.candidates import BAND_MONTHLY_RATE


def draw_world(
    history: MarketHistory,
    *,
    options: WorldOptions,
    interruptions: InterruptionModel,
    seed: int,
    start_s: float,
    end_s: float,
    instance_types: Collection[str] | None = None,
) -> World:
    """The world of ``seed`` over ``[start_s, end_s)`` for the pools of ``instance_types``
    (default: all)."""
    pools = [
        pool
        for pool in history.pools
        if instance_types is None or pool.instance_type in instance_types
    ]
    if options.name == "advisor":
        notices = sample_interruptions(
            history, seed=seed, start_s=start_s, end_s=end_s, model=interruptions
        )
        return World("advisor", {}, notices, {"model": "Poisson at the Advisor band's rate",
                                             "rate_scale": interruptions.rate_scale})  # fmt: skip
    down: dict[int, DownIntervals] = {}
    parameters: dict[str, object] = {}
    excluded: set[int] = set()
    modelled = pools
    if options.name == "traces":
        found = _trace_files(options, interruptions)
        # Every file is read (and a malformed one refused), whether or not it drives a pool.
        loaded = {path: traces.load_trace(path) for path in sorted(set(found.values()))}
        covered = traces.pools_of_traces(
            {
                p.index: (p.region, p.zone, p.availability_zone, p.availability_zone_id,
                          p.instance_type)
                for p in pools
            },
            found,
        )  # fmt: skip
        _refuse_unmatched(interruptions.traces, covered, history)
        for index, path in sorted(covered.items()):
            starts, ends = loaded[path].down_intervals(start_s, end_s)
            down[index] = DownIntervals(starts, ends)
        parameters.update(
            trace_set=options.trace_set,
            traces={key: str(path) for key, path in sorted(found.items())},
            pools_traced=len(covered),
            untraced=options.untraced,
        )
        modelled = [p for p in pools if p.index not in covered]
        if options.untraced != "calibrated":
            excluded = {p.index for p in modelled}
            modelled = []
    if modelled:
        specs = [
            calibrated.PoolSpec(
                index=p.index,
                key=f"{p.region}/{p.zone}/{p.instance_type}",
                region=p.region,
                availability_zone=p.availability_zone,
                intensity=_intensity(history, p.index, interruptions, start_s, end_s),
            )
            for p in modelled
        ]
        down.update(
            calibrated.generate(calibrated.FITTED, specs, seed=seed, start_s=start_s, end_s=end_s)
        )
        parameters["calibrated"] = calibrated.FITTED.describe()
        parameters["intensity"] = (
            "k = rate(band) / rate(band 4) x (1 + (at_on_demand_multiplier - 1) x closeness to "
            "on-demand)"
        )
    return from_down_intervals(
        options.name, down, start_s=start_s, end_s=end_s, parameters=parameters,
        excluded=frozenset(excluded),
    )  # fmt: skip


def _refuse_unmatched(
    explicit: Mapping[str, Path], covered: Mapping[int, Path], history: MarketHistory
) -> None:
    """An explicit ``backtest.traces`` entry must drive a pool (a set's files need not: the
    selection may leave their AZs out)."""
    used = set(covered.values())
    for key, path in explicit.items():
        if path not in used:
            raise InputError(
                f"backtest.traces: no spot pool {key!r} in the oracle; key a trace by "
                "'AZ/instance type', e.g. 'us-east-1a/p3.2xlarge'"
            )


def _trace_files(options: WorldOptions, interruptions: InterruptionModel) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if options.trace_set and options.trace_dir:
        found.update(traces.trace_set(Path(options.trace_dir).expanduser() / options.trace_set))
    found.update(interruptions.traces)
    return found


def _intensity(
    history: MarketHistory,
    pool: int,
    model: InterruptionModel,
    start_s: float,
    end_s: float,
) -> Callable[[float], float]:
    """The pool's intensity as a function of time (a step function over the window)."""
    moments, factors = intensity_path(history, pool, start_s=start_s, end_s=end_s, model=model)
    reference = BAND_MONTHLY_RATE[calibrated.REFERENCE_BAND]
    scaled = factors / reference

    def at(t_s: float) -> float:
        index = int(np.searchsorted(moments, t_s, side="right")) - 1
        return float(scaled[max(index, 0)])

    return at
