"""The ``calibrated`` world: spot capacity drawn from a generator fitted to real traces.

The model. A pool has capacity while three alternating up/down processes are all up:

- its own process (per pool);
- its region's shock (shared by every pool of the region);
- a global shock (shared by every pool).

Each process alternates up and down runs whose lengths are log-normal (median and log-sd per
kind of run): the traces' runs are heavy-tailed (us-west-2b: median up 1.4 h, mean 10.4 h),
which exponential runs cannot give. The shared shocks make the AZs of a region fail together
(within-region correlation 0.40-0.59 in the traces) and, rarely, all regions at once (all 9
AZs empty 0.79% of the time). The model's cross-region correlation is about 0.02 against the
traces' 0.14: its only cross-region link is the global outage, and one strong enough for 0.14
would empty every AZ 3.6% of the time; the fit keeps the all-down share instead.

Fit (:func:`fit`, to SkyPilot's 2023 p3.2xlarge traces; :data:`FITTED` holds the result): in
closed form from the traces' shares, correlations and loss rates (see :func:`fit`), then the
global shock's down share matched to the all-down share by simulation.
:func:`trace_statistics` computes WORLD.md's figures; the test holds the generator to them
within the tolerances it states.

Scaling to other pools (these are a 2023 V100 in Advisor band 4, ">20%"). A pool's intensity

    k = rate(band) / rate(band 4) x (1 + (m - 1) x closeness(price / on-demand))

(rate: the band midpoints of :data:`BAND_MONTHLY_RATE`; ``closeness`` rises from 0 at
``near_on_demand_fraction`` of on-demand to 1 at on-demand; ``m`` is
``at_on_demand_multiplier``) divides its own up runs (k evaluated at each run's start), and a
shock hits it only if the shock's uniform draw ``u < k`` (one draw per shock shared by every
pool, so pools of higher intensity are hit whenever lower ones are). A g6 pool in band 0 has
k = 0.1: a tenth of the V100's losses. A pool in a trace AZ (by AZ name) uses that AZ's fitted
own process and region; any other, the median of the fitted AZs (log-space) and, outside the
fitted regions, the median region shock.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scheduler.backtest.world import DownIntervals, merge_intervals

#: Probe interval of the 2023 traces (seconds); statistics are read on this grid.
PROBE_S = 195.0
#: The Advisor band of the traces' pools (p3.2xlarge, ">20%").
REFERENCE_BAND = 4
#: Rounds of matching the all-AZs-down share by simulation (see :func:`fit`).
_GLOBAL_ROUNDS = 3
#: Warm-up before the window so that the processes start in their stationary mix.
_WARMUP_S = 7 * 86_400.0
#: Log-sd of the shared shocks' runs: heavy-tailed shared outages make the correlations of
#: one 45-day draw swing from 0 to 0.9.
_SHOCK_SIGMA = 1.5


@dataclass(frozen=True)
class Runs:
    """Log-normal run lengths of an alternating up/down process (hours)."""

    median_up_h: float
    sigma_up: float
    median_down_h: float
    sigma_down: float

    @property
    def mean_up_h(self) -> float:
        return self.median_up_h * math.exp(self.sigma_up**2 / 2)

    @property
    def mean_down_h(self) -> float:
        return self.median_down_h * math.exp(self.sigma_down**2 / 2)

    @property
    def availability(self) -> float:
        return self.mean_up_h / (self.mean_up_h + self.mean_down_h)

    @classmethod
    def from_moments(
        cls, median_up_h: float, mean_up_h: float, median_down_h: float, mean_down_h: float
    ) -> Runs:
        return cls(
            median_up_h,
            _sigma(mean_up_h, median_up_h),
            median_down_h,
            _sigma(mean_down_h, median_down_h),
        )


@dataclass(frozen=True)
class Calibration:
    """Fitted processes: the global shock, region shocks, own processes per AZ name."""

    global_shock: Runs
    regions: Mapping[str, Runs]
    zones: Mapping[str, Runs]
    #: Probability that a global shock reaches a given pool (one draw per shock and pool).
    global_reach: float = 0.5

    def region(self, name: str) -> Runs:
        return self.regions.get(name) or _median_runs(list(self.regions.values()))

    def zone(self, name: str | None) -> Runs:
        fitted = self.zones.get(name or "")
        return fitted or _median_runs(list(self.zones.values()))

    def describe(self) -> dict[str, Any]:
        def rounded(runs: Runs) -> dict[str, float]:
            return {key: round(value, 3) for key, value in asdict(runs).items()}

        return {
            "global_shock": rounded(self.global_shock),
            "region_shocks": {name: rounded(runs) for name, runs in sorted(self.regions.items())},
            "own": {name: rounded(runs) for name, runs in sorted(self.zones.items())},
            "global_reach": round(self.global_reach, 3),
            "reference_band": REFERENCE_BAND,
        }


@dataclass(frozen=True)
class PoolSpec:
    """What the generator needs of a pool."""

    index: int
    key: str
    region: str
    availability_zone: str | None
    #: Intensity at a moment (epoch seconds); 1 is the traces' V100.
    intensity: Callable[[float], float]


def generate(
    calibration: Calibration,
    pools: Sequence[PoolSpec],
    *,
    seed: int,
    start_s: float,
    end_s: float,
) -> dict[int, DownIntervals]:
    """Down intervals per pool over ``[start_s, end_s)``. Each process draws from a generator
    seeded by (seed, its name), so a pool's world does not depend on which others are loaded."""
    begin = start_s - _WARMUP_S
    shocks: dict[str, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]] = {}
    global_starts, global_ends, _ = _shock(
        calibration.global_shock, _rng(seed, "global"), begin, end_s
    )
    for region in sorted({pool.region for pool in pools}):
        shocks[region] = _shock(calibration.region(region), _rng(seed, region), begin, end_s)
    down: dict[int, DownIntervals] = {}
    for pool in pools:
        starts, ends = _own(
            calibration.zone(pool.availability_zone), _rng(seed, pool.key), begin, end_s,
            pool.intensity,
        )  # fmt: skip
        parts_s, parts_e = [starts], [ends]
        # Whether each global shock reaches the pool: a uniform per (shock, pool), scaled so
        # that a draw below the reach hits the traces' V100 and below reach x k a pool of
        # intensity k.
        reach = _rng(seed, f"global/{pool.key}").random(global_starts.size)
        shocks["global"] = (global_starts, global_ends, reach / calibration.global_reach)
        for name in ("global", pool.region):
            s, e, u = shocks[name]
            hit = np.array([draw < pool.intensity(t) for draw, t in zip(u, s, strict=True)], bool)
            parts_s.append(s[hit])
            parts_e.append(e[hit])
        merged = merge_intervals(np.concatenate(parts_s), np.concatenate(parts_e))
        keep = merged.ends > start_s
        down[pool.index] = DownIntervals(
            np.maximum(merged.starts[keep], start_s), np.minimum(merged.ends[keep], end_s)
        )
    return down


def trace_statistics(
    series: Mapping[str, NDArray[np.bool_]], gap_s: float = PROBE_S
) -> dict[str, Any]:
    """WORLD.md's figures of availability series keyed by AZ name (equal lengths): per AZ the
    available share, losses per day, median up and down run (h); the mean within-region and
    cross-region Pearson correlation; per region the share with no AZ available; the share
    with none of them available."""
    names = sorted(series)
    matrix = np.array([series[name] for name in names], dtype=bool)
    days = matrix.shape[1] * gap_s / 86_400.0
    zones = {}
    for name, row in zip(names, matrix, strict=True):
        values, lengths = _runs(row)
        lengths_h = lengths * gap_s / 3600.0
        zones[name] = {
            "available": float(row.mean()),
            "losses_per_day": float(np.sum(row[:-1] & ~row[1:]) / days),
            "median_up_h": _median(lengths_h[values]),
            "median_down_h": _median(lengths_h[~values]),
        }
    regions: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        regions.setdefault(name[:-1], []).append(position)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(matrix.astype(float))
    within: dict[str, float] = {}
    cross: list[float] = []
    for region, members in regions.items():
        pairs = [corr[a, b] for i, a in enumerate(members) for b in members[i + 1 :]]
        within[region] = float(np.nanmean(pairs)) if pairs else math.nan
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if names[a][:-1] != names[b][:-1]:
                cross.append(float(corr[a, b]))
    return {
        "zones": zones,
        "within_region_correlation": within,
        "cross_region_correlation": float(np.nanmean(cross)) if cross else math.nan,
        "region_all_down": {
            region: float(np.mean(~matrix[members].any(axis=0)))
            for region, members in regions.items()
        },
        "all_down": float(np.mean(~matrix.any(axis=0))),
    }


def sample_series(
    down: DownIntervals, start_s: float, count: int, gap_s: float = PROBE_S
) -> NDArray[np.bool_]:
    """Availability at ``count`` probes every ``gap_s`` from ``start_s``."""
    probes = start_s + np.arange(count) * gap_s
    index = np.searchsorted(down.starts, probes, side="right") - 1
    inside = (index >= 0) & (probes < down.ends[np.maximum(index, 0)])
    return ~inside


def fit(series: Mapping[str, NDArray[np.bool_]], *, gap_s: float = PROBE_S) -> Calibration:
    """Fit the model to availability series keyed by AZ name (equal lengths), in closed form.

    The processes are independent and stationary, so with ``a_z`` the AZ's available share,
    ``q_r`` the share of time its region's shocks (region and reaching global) are up, ``d``
    the global shock's down share and ``rho`` its reach:

    - within a region, ``cov(X_z, X_w) = a_z a_w (1 / q_r - 1 + c)`` (region shock, and the
      global shock's part ``c`` below): the mean correlation gives ``q_r``;
    - across regions, ``cov = a_z a_w c`` with ``c = (1 - d (2 rho - rho^2)) / (1 - d rho)^2
      - 1``: the mean correlation gives ``c``;
    - all AZs down: ``(1 - d) prod_r D_r(0) + d prod_r D_r(rho)`` with ``D_r(x) = 1 - p_R (1 -
      prod_z (1 - p_z (1 - x)))``, ``p_R = q_r / (1 - d rho)``, ``p_z = a_z / q_r``: a search
      over ``rho`` (with ``d`` from ``c``) matches the all-9-down share;
    - losses per hour ``= a_z x sum over processes of 1 / mean up run`` (a renewal process
      goes down once per cycle): the own process's mean up run follows, and its mean down
      run from ``p_z``.

    Shock down runs take the mean down run of the "all AZs down" series (region) and of "all 9
    down" (global), log-sd :data:`_SHOCK_SIGMA`; own runs keep the log-sd of the AZ's observed
    runs (from their mean and median) with the means above.
    """
    names = sorted(series)
    matrix = np.array([series[name] for name in names], dtype=bool)
    target = trace_statistics(series, gap_s)
    available = {name: target["zones"][name]["available"] for name in names}
    by_region: dict[str, list[str]] = {}
    for name in names:
        by_region.setdefault(name[:-1], []).append(name)
    odds = {name: math.sqrt(a / (1 - a)) for name, a in available.items()}
    cross = [
        odds[a] * odds[b] for i, a in enumerate(names) for b in names[i + 1 :] if a[:-1] != b[:-1]
    ]
    c = target["cross_region_correlation"] / float(np.mean(cross)) if cross else 0.0
    q = {}
    for region, members in by_region.items():
        pairs = [odds[a] * odds[b] for i, a in enumerate(members) for b in members[i + 1 :]]
        # The global shock's part of the covariance (c per a_z a_w) is shared by every pair.
        share = max(target["within_region_correlation"][region] / float(np.mean(pairs)) - c, 0.0)
        # Each AZ's own share p_z = a_z / q_r must stay below 1.
        q[region] = min(1.0 / (1.0 + share), 1.0)
        q[region] = max(q[region], max(available[m] for m in members) / 0.999)
        q[region] = min(q[region], 1.0)
    best: tuple[float, float, float] | None = None
    for rho in np.linspace(0.05, 1.0, 96):
        d = _global_down_share(c, float(rho))
        if d is None:
            continue
        all_down = _all_down(by_region, available, q, d, float(rho))
        gap = abs(math.log(max(all_down, 1e-9) / max(target["all_down"], 1e-9)))
        if best is None or gap < best[0]:
            best = (gap, float(rho), d)
    _, rho, d = best if best is not None else (0.0, 0.5, 0.0)
    global_runs = _runs_of(matrix.any(axis=0), gap_s)

    def assemble(d: float) -> Calibration:
        c_global = (1 - d * (2 * rho - rho * rho)) / (1 - d * rho) ** 2 - 1
        global_shock = _with_share(global_runs.mean_down_h, max(1.0 - d, 1e-6))
        regions = {}
        zones = {}
        for region, members in by_region.items():
            pairs = [odds[a] * odds[b] for i, a in enumerate(members) for b in members[i + 1 :]]
            share = target["within_region_correlation"][region] / float(np.mean(pairs))
            q_region = min(1.0 / (1.0 + max(share - c_global, 0.0)), 1.0)
            q_region = min(max(q_region, max(available[m] for m in members) / 0.999), 1.0)
            p_region = min(q_region / (1 - d * rho), 1.0)
            rows = matrix[[names.index(m) for m in members]]
            region_runs = _runs_of(rows.any(axis=0), gap_s)
            regions[region] = _with_share(region_runs.mean_down_h, max(p_region, 1e-6))
            shock_rate = 1.0 / regions[region].mean_up_h + rho / global_shock.mean_up_h / (
                1 - d * rho
            )
            for name in members:
                figures = target["zones"][name]
                p_own = min(available[name] / q_region, 0.999)
                per_hour = figures["losses_per_day"] / 24.0 / available[name] - shock_rate
                mean_up = 1.0 / per_hour if per_hour > 0 else 1e3
                mean_down = mean_up * (1 - p_own) / p_own
                # The AZ's own runs keep the spread (log-sd) of its observed runs.
                observed = _runs_of(matrix[names.index(name)], gap_s)
                zones[name] = Runs(
                    mean_up / math.exp(observed.sigma_up**2 / 2),
                    observed.sigma_up,
                    mean_down / math.exp(observed.sigma_down**2 / 2),
                    observed.sigma_down,
                )
        return Calibration(global_shock, regions, zones, rho)

    calibration = assemble(d)
    # The closed form's global shock (about 6% down, reaching 88% of pools) empties all nine
    # AZs 3.6% of the time against the traces' 0.8%: make it rarer to match that share, which
    # decides whether a cross-region hedge holds, and refit the rest around it (the
    # cross-region correlation then falls short: the traces' co-movement across regions is
    # more than shared outages).
    for _ in range(_GLOBAL_ROUNDS):
        drawn = simulate_statistics(calibration, names, 6 * matrix.shape[1], seed=1, gap_s=gap_s)
        d = min(max(d * target["all_down"] / max(drawn["all_down"], 1e-6), 1e-4), 0.5)
        calibration = assemble(d)
    return calibration


def simulate_statistics(
    calibration: Calibration, names: Sequence[str], count: int, seed: int, gap_s: float = PROBE_S
) -> dict[str, Any]:
    """The statistics of one draw of the model on AZs ``names`` at intensity 1."""
    pools = [PoolSpec(i, name, name[:-1], name, lambda _t: 1.0) for i, name in enumerate(names)]
    span = count * gap_s
    down = generate(calibration, pools, seed=seed, start_s=0.0, end_s=span)
    return trace_statistics(
        {name: sample_series(down[i], 0.0, count, gap_s) for i, name in enumerate(names)}, gap_s
    )


# --- helpers ------------------------------------------------------------------------------


def _global_down_share(c: float, rho: float) -> float | None:
    """The global shock's down share ``d`` with ``(1 - d (2 rho - rho^2)) / (1 - d rho)^2 - 1
    = c`` (increasing in ``d``), by bisection; ``None`` when no ``d`` below 1 reaches it."""

    def excess(d: float) -> float:
        return (1 - d * (2 * rho - rho * rho)) / (1 - d * rho) ** 2 - 1 - c

    low, high = 0.0, 0.999
    if excess(high) < 0:
        return None
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if excess(middle) < 0 else (low, middle)
    return (low + high) / 2


def _all_down(
    by_region: Mapping[str, list[str]],
    available: Mapping[str, float],
    q: Mapping[str, float],
    d: float,
    rho: float,
) -> float:
    quiet = hit = 1.0
    for region, members in by_region.items():
        p_region = min(q[region] / (1 - d * rho), 1.0)
        own = [min(available[m] / q[region], 1.0) for m in members]
        quiet *= 1 - p_region * (1 - float(np.prod([1 - p for p in own])))
        hit *= 1 - p_region * (1 - float(np.prod([1 - p * (1 - rho) for p in own])))
    return (1 - d) * quiet + d * hit


def _with_share(mean_down_h: float, up_share: float) -> Runs:
    """Shock runs: the mean down run given, the mean up run that makes ``up_share``."""
    mean_up_h = mean_down_h * up_share / max(1 - up_share, 1e-9)
    spread = math.exp(_SHOCK_SIGMA**2 / 2)
    return Runs(mean_up_h / spread, _SHOCK_SIGMA, mean_down_h / spread, _SHOCK_SIGMA)


def _runs_of(row: Any, gap_s: float) -> Runs:
    values, lengths = _runs(row)
    hours = lengths * gap_s / 3600.0
    up, down = hours[values], hours[~values]
    if up.size == 0 or down.size == 0:
        return Runs(1e3, 0.1, 1e-3, 0.1)
    return Runs.from_moments(
        float(np.median(up)), float(up.mean()), float(np.median(down)), float(down.mean())
    )


def _runs(row: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    changes = np.flatnonzero(row[1:] != row[:-1]) + 1
    begins = np.r_[0, changes]
    ends = np.r_[changes, row.size]
    return row[begins], ends - begins


def _median(values: NDArray[np.floating[Any]]) -> float:
    return float(np.median(values)) if values.size else 0.0


def _sigma(mean: float, median: float) -> float:
    return math.sqrt(2 * math.log(mean / median)) if mean > median > 0 else 0.1


def _median_runs(runs: Sequence[Runs]) -> Runs:
    def middle(values: list[float]) -> float:
        return float(np.exp(np.median(np.log(values))))

    return Runs(
        middle([r.median_up_h for r in runs]),
        float(np.median([r.sigma_up for r in runs])),
        middle([r.median_down_h for r in runs]),
        float(np.median([r.sigma_down for r in runs])),
    )


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _alternate(
    runs: Runs,
    rng: np.random.Generator,
    begin: float,
    end: float,
    intensity: Callable[[float], float] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Down intervals of one alternating process from ``begin`` to ``end`` (seconds); up runs
    divided by ``intensity`` at their start."""
    starts: list[float] = []
    ends: list[float] = []
    t = begin
    up = bool(rng.random() < runs.availability)
    batch = 256
    ups = downs = np.zeros(0)
    position = batch
    while t < end:
        if position >= batch:
            # Runs last at least one probe: the traces cannot see shorter ones.
            ups = np.maximum(
                rng.lognormal(math.log(runs.median_up_h), runs.sigma_up, batch) * 3600.0, PROBE_S
            )
            downs = np.maximum(
                rng.lognormal(math.log(runs.median_down_h), runs.sigma_down, batch) * 3600.0,
                PROBE_S,
            )
            position = 0
        if up:
            k = intensity(t) if intensity is not None else 1.0
            t += ups[position] / max(k, 1e-6)
        else:
            starts.append(t)
            t += downs[position]
            ends.append(t)
            position += 1
        up = not up
    return np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)


def _own(
    runs: Runs,
    rng: np.random.Generator,
    begin: float,
    end: float,
    intensity: Callable[[float], float],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return _alternate(runs, rng, begin, end, intensity)


def _shock(
    runs: Runs, rng: np.random.Generator, begin: float, end: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """A shared shock's down intervals and one uniform draw per interval."""
    starts, ends = _alternate(runs, rng, begin, end)
    return starts, ends, rng.random(starts.size)


#: :func:`fit` of the 2023 p3.2xlarge traces (aws-02-15-2023, 9 AZs; WORLD.md), rounded to 4
#: digits; a test refits them from the traces.
FITTED = Calibration(
    global_shock=Runs(23.61, 1.5, 0.1876, 1.5),
    regions={
        "us-east-1": Runs(0.6242, 1.5, 0.3269, 1.5),
        "us-east-2": Runs(2.951, 1.5, 0.6236, 1.5),
        "us-west-2": Runs(6.098, 1.5, 0.2453, 1.5),
    },
    zones={
        "us-east-1a": Runs(0.5267, 1.261, 0.5129, 1.944),
        "us-east-1c": Runs(2.333, 1.491, 0.9, 1.51),
        "us-east-1d": Runs(4.817, 1.497, 2.316, 1.463),
        "us-east-1f": Runs(240, 1.689, 31.99, 1.526),
        "us-east-2a": Runs(2.896, 1.939, 0.3186, 1.765),
        "us-east-2b": Runs(2.285, 1.654, 0.6431, 1.439),
        "us-west-2a": Runs(1.724, 1.883, 0.3865, 1.23),
        "us-west-2b": Runs(4.559, 2, 0.6351, 1.462),
        "us-west-2c": Runs(1.681, 2, 0.4007, 1.257),
    },
    global_reach=0.88,
)
