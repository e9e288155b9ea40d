"""The ``calibrated`` world: spot capacity drawn from a generator fitted to real traces.

The model. A pool has capacity while two alternating up/down processes are both up:

- its own process (per pool);
- its region's shock (shared by every pool of the region);

and a third, the global shock (shared by every pool), raises the first: while it is down,
every pool's own loss rate is :attr:`Calibration.global_multiplier` times as high (its up runs
run that much faster; about 110x for the traces).

Each process alternates up and down runs whose lengths are log-normal (median and log-sd per
kind of run): the traces' runs are heavy-tailed (us-west-2b: median up 1.4 h, mean 10.4 h),
which exponential runs cannot give. The region shocks make the AZs of a region fail together
(within-region correlation 0.40-0.59 in the traces). The global shock is the cross-region
link (0.14 in the traces): a spell of scarcity everywhere that takes most of a scarce AZ's
capacity (us-east-1a: 99% of its own up time while it lasts) and part of a plentiful one's
(us-west-2b: half), so that it moves every region's availability together without emptying
every AZ at once: all 9 AZs are empty 0.8% of the time, as in the traces. Outages cannot do
both: one shared by all regions and strong enough for 0.14 empties all nine AZs 3.6% of the
time, and shocks that empty a random subset of regions add, in closed form, about as much
all-down share as cross-region covariance (some 5%).

Fit (:func:`fit`, to SkyPilot's 2023 p3.2xlarge traces; :data:`FITTED` holds the result): in
closed form from the traces' shares, correlations, loss rates and all-down share (see
:func:`fit`), then corrected by simulation for what the closed form leaves out.
:func:`trace_statistics` computes WORLD.md's figures; the test holds the generator to them
within the tolerances it states.

Scaling to other pools (these are a 2023 V100 in Advisor band 4, ">20%"). A pool's intensity

    k = rate(band) / rate(band 4) x (1 + (m - 1) x closeness(price / on-demand))

(rate: the band midpoints of :data:`BAND_MONTHLY_RATE`; ``closeness`` rises from 0 at
``near_on_demand_fraction`` of on-demand to 1 at on-demand; ``m`` is
``at_on_demand_multiplier``) divides its own up runs (k evaluated at each run's start; under
the global shock, k times the multiplier), and a region shock hits it only if the shock's
uniform draw ``u < k`` (one draw per shock shared by every pool of the region, so pools of
higher intensity are hit whenever lower ones are). A g6 pool in band 0 has k = 0.1: a tenth
of the V100's losses, and a spell of scarcity takes less of its capacity. A pool in a trace
AZ (by AZ name) uses that AZ's fitted own process and region; any other, the median of the
fitted AZs (log-space) and, outside the fitted regions, the median region shock.
"""

from __future__ import annotations

import bisect
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scheduler.backtest.world import DownIntervals, merge_intervals

#: Probe interval of the 2023 traces (seconds); statistics are read on this grid.
PROBE_S = 195.0
#: The Advisor band of the traces' pools (p3.2xlarge, ">20%").
REFERENCE_BAND = 4
#: Rounds of correcting the closed form by simulation (see :func:`fit`).
_ROUNDS = 5
#: Length of the draws that check the closed form, in trace lengths.
_DRAW_LENGTHS = 60
#: Warm-up before the window so that the processes start in their stationary mix.
_WARMUP_S = 7 * 86_400.0
#: Log-sd of the region shocks' runs: heavy-tailed shared outages make the correlations of
#: one 45-day draw swing from 0 to 0.9.
_SHOCK_SIGMA = 1.5
#: Log-sd of the global shock's runs: a slow change of conditions (the traces' cross-region
#: covariance decays over about 11 h). At 1.5, ten draws of 30 trace lengths gave cross-region
#: correlations from 0.10 to 0.16; at 0.6, from 0.13 to 0.14.
_GLOBAL_SIGMA = 0.6
#: Range searched for the global shock's loss-rate multiplier, and the grid of its down
#: shares on which the cross-region correlation's peak is found (see :func:`fit`).
_MULTIPLIERS = (1.5, 1000.0)
_DOWN_SHARES = np.geomspace(0.002, 0.95, 10)


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
    """Fitted processes: the global shock (and how much it raises the own loss rates), region
    shocks, own processes per AZ name."""

    global_shock: Runs
    regions: Mapping[str, Runs]
    zones: Mapping[str, Runs]
    #: While the global shock is down, every pool's own loss rate is this many times as high.
    global_multiplier: float = 1.0

    def region(self, name: str) -> Runs:
        return self.regions.get(name) or _median_runs(list(self.regions.values()))

    def reach(self, name: str | None) -> float:
        """The share of the own process's up time in AZ ``name`` that the global shock takes
        while it lasts (at intensity 1, for shocks long against the own runs)."""
        return _reach(self.zone(name).availability, self.global_multiplier)

    @property
    def global_reach(self) -> float:
        """The median of :meth:`reach` over the fitted AZs."""
        return float(np.median([self.reach(name) for name in self.zones]))

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
            "global_multiplier": round(self.global_multiplier, 3),
            "global_reach": round(self.global_reach, 3),
            "reach": {name: round(self.reach(name), 3) for name in sorted(self.zones)},
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
    # The global shock's down intervals, in which every own process loses capacity
    # global_multiplier times as fast.
    stress_starts, stress_ends = _alternate(
        calibration.global_shock, _rng(seed, "global"), begin, end_s
    )
    stress = (stress_starts.tolist(), stress_ends.tolist())
    for region in sorted({pool.region for pool in pools}):
        shocks[region] = _shock(calibration.region(region), _rng(seed, region), begin, end_s)
    down: dict[int, DownIntervals] = {}
    for pool in pools:
        runs = calibration.zone(pool.availability_zone)
        starts, ends = _alternate(
            runs,
            _rng(seed, pool.key),
            begin,
            end_s,
            pool.intensity,
            (*stress, calibration.global_multiplier),
        )
        parts_s, parts_e = [starts], [ends]
        # Whether each region shock reaches the pool: its uniform draw (one per shock, shared by
        # the region's pools) below the pool's intensity k.
        s, e, u = shocks[pool.region]
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
    """Fit the model to availability series keyed by AZ name (equal lengths).

    Notation: ``a_z`` the AZ's available share, ``o_z = sqrt(a_z / (1 - a_z))`` (a covariance
    over ``a_z a_w`` times ``o_z o_w`` is a correlation); ``d`` the global shock's down share
    and ``m`` its loss-rate multiplier; ``p_r`` the up share of region ``r``'s shock; ``p_z``
    that of the AZ's own process, and ``U_z``, ``D_z`` its mean up and down runs.

    While the shock lasts, the own process's up runs end ``m`` times as fast, so (for shocks
    long against the own runs) its up share falls from ``p_z = U_z / (U_z + D_z)`` to ``U_z /
    (U_z + m D_z) = p_z (1 - rho_z)``, with the reach ``rho_z = 1 - 1 / (p_z + m (1 - p_z))``:
    large where capacity is scarce, small where it is plentiful (us-west-2). The processes are
    independent and the own processes independent given the shock, so ``a_z = p_r p_z (1 - d
    rho_z)`` and, with ``h_z = d rho_z / (1 - d rho_z)`` and ``kappa = (1 - d) / d``:

    - across regions, ``cov(X_z, X_w) / (a_z a_w) = kappa h_z h_w``;
    - within a region, ``cov(X_z, X_w) / (a_z a_w) = (1 + kappa h_z h_w) / p_r - 1``;
    - all AZs down: ``(1 - d) prod_r D_r(0) + d prod_r D_r(1)`` with ``D_r(s) = 1 - p_r (1 -
      prod_z (1 - p_z (1 - s rho_z)))``.

    For given ``(m, d)``: each region's ``p_r`` by bisection so that its mean within-region
    correlation is the traces', each ``p_z`` by bisection on ``p_z (1 - d rho_z) = a_z / p_r``
    (increasing in ``p_z``). Then ``d`` by bisection on the rising branch of the mean
    cross-region correlation (0 at ``d = 0`` and ``d = 1``) so that it is the traces', and
    ``m`` by bisection (in log) so that the all-9-down share is the traces' (it rises with
    ``m`` along that curve: a stronger, rarer shock empties more AZs at once).

    Losses per hour ``= p_r p_z ((1 - d) + d (1 - rho_z) m) / U_z + a_z / U_r`` (the own
    process goes down from up at rate ``1 / U_z``, ``m / U_z`` under the shock; the region
    shock once per cycle): ``U_z`` follows, and ``D_z = U_z (1 - p_z) / p_z``.

    Run lengths: the global shock's mean down run is ``tau / (1 - d)``, where ``tau`` is the lag
    at which the traces' mean cross-region covariance falls to 1/e of its value at lag 0 (an
    alternating process's autocovariance decays as ``exp(-lag (1 / U + 1 / D))``); a region
    shock's mean down run is that of its "all AZs down" series, log-sd :data:`_SHOCK_SIGMA`
    (:data:`_GLOBAL_SIGMA` for the global shock). Own runs keep the log-sd of the AZ's
    observed runs (from their mean and median) with the means above.

    The closed form assumes shocks long against the own runs, which heavy-tailed runs are not:
    a down run that starts under the shock outlasts it, so the simulation's cross-region
    correlation comes out about a third short and the available shares up to 0.05 low. So
    :data:`_ROUNDS` rounds simulate :data:`_DRAW_LENGTHS` trace lengths of the fit, scale
    ``kappa`` in both covariances by the simulated over the traces' cross-region correlation
    (the share of the shock's covariance the simulation keeps), and each ``a_z`` the closed
    form aims at by the square root of the traces' over the simulated share (damped: the full
    ratio overshoots).
    """
    names = sorted(series)
    matrix = np.array([series[name] for name in names], dtype=bool)
    target = trace_statistics(series, gap_s)
    shape = _Shape.of(names, matrix, target, gap_s)
    all_down = target["all_down"]
    cross = target["cross_region_correlation"]
    calibration = shape.assemble(shape.best(all_down, cross))
    for _ in range(_ROUNDS):
        drawn = simulate_statistics(
            calibration, names, _DRAW_LENGTHS * matrix.shape[1], seed=1, gap_s=gap_s
        )
        coupling = max(drawn["cross_region_correlation"], 1e-3) / cross
        available = {
            name: min(value * math.sqrt(want / max(drawn["zones"][name]["available"], 1e-3)), 0.99)
            for name, value in shape.available.items()
            for want in [target["zones"][name]["available"]]
        }
        # The odds o_z stay the traces': they turn the traces' correlations into covariances.
        shape = replace(shape, coupling=shape.coupling * coupling, available=available)
        calibration = shape.assemble(shape.best(all_down, cross))
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


@dataclass(frozen=True)
class _Shares:
    """The global shock's down share ``d`` and reach per AZ; up shares of the region shocks
    and own processes (see :func:`fit`)."""

    d: float
    multiplier: float
    reach: Mapping[str, float]
    p_region: Mapping[str, float]
    p_own: Mapping[str, float]
    #: The mean cross-region correlation these shares give.
    cross: float


@dataclass(frozen=True)
class _Shape:
    """The traces' figures that the closed form of :func:`fit` works from."""

    regions: Mapping[str, list[str]]
    available: Mapping[str, float]
    odds: Mapping[str, float]
    within: Mapping[str, float]
    losses_per_h: Mapping[str, float]
    #: Per AZ, its observed runs; per region, the runs of its "all AZs down" series.
    observed: Mapping[str, Runs]
    region_runs: Mapping[str, Runs]
    #: The global shock's correlation time (h): see :func:`fit`.
    tau_h: float
    #: The share of the closed form's shock covariance that the simulation shows.
    coupling: float = 1.0

    @classmethod
    def of(
        cls, names: list[str], matrix: NDArray[np.bool_], target: Mapping[str, Any], gap_s: float
    ) -> _Shape:
        regions: dict[str, list[str]] = {}
        for name in names:
            regions.setdefault(name[:-1], []).append(name)
        zones = target["zones"]
        available = {name: zones[name]["available"] for name in names}
        rows = {region: [names.index(m) for m in members] for region, members in regions.items()}
        return cls(
            regions=regions,
            available=available,
            odds={name: math.sqrt(a / max(1 - a, 1e-9)) for name, a in available.items()},
            within=target["within_region_correlation"],
            losses_per_h={name: zones[name]["losses_per_day"] / 24.0 for name in names},
            observed={name: _runs_of(matrix[i], gap_s) for i, name in enumerate(names)},
            region_runs={r: _runs_of(matrix[i].any(axis=0), gap_s) for r, i in rows.items()},
            tau_h=_correlation_time_h(matrix, rows, gap_s),
        )

    def shares(self, multiplier: float, d: float) -> _Shares:
        """The shares for a global shock, down ``d`` of the time, that multiplies every own
        process's loss rate by ``m = multiplier`` (see :func:`fit`)."""
        kappa = self.coupling * (1 - d) / d
        p_region, p_own, reach = {}, {}, {}
        for region, members in self.regions.items():

            def solve(p_r: float, members: list[str] = members) -> dict[str, float]:
                return {m: _own_share(self.available[m] / p_r, multiplier, d) for m in members}

            def within(p_r: float, members: list[str] = members) -> float:
                own = solve(p_r)
                h = {m: d * _reach(own[m], multiplier) for m in members}
                h = {m: value / (1 - value) for m, value in h.items()}
                pairs = [(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
                return float(
                    np.mean(
                        [
                            ((1 + kappa * h[a] * h[b]) / p_r - 1) * self.odds[a] * self.odds[b]
                            for a, b in pairs
                        ]
                    )
                )

            # The mean within-region correlation falls as the region shock's up share p_r
            # rises; p_r >= a_z for every AZ (its own up share is at most 1).
            low, high = max(self.available[m] for m in members) / 0.999, 1.0
            if len(members) < 2 or within(high) >= self.within[region]:
                p_r = high
            elif within(low) <= self.within[region]:
                p_r = low
            else:
                for _ in range(20):
                    middle = (low + high) / 2
                    low, high = (
                        (middle, high) if within(middle) > self.within[region] else (low, middle)
                    )
                p_r = (low + high) / 2
            p_region[region] = p_r
            for m, share in solve(p_r).items():
                p_own[m] = share
                reach[m] = _reach(share, multiplier)
        names = sorted(self.available)
        h = {name: d * reach[name] / (1 - d * reach[name]) for name in names}
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if a[:-1] != b[:-1]]
        cross = [kappa * h[a] * h[b] * self.odds[a] * self.odds[b] for a, b in pairs]
        return _Shares(
            d, multiplier, reach, p_region, p_own, float(np.mean(cross)) if cross else 0.0
        )

    def all_down(self, shares: _Shares) -> float:
        quiet = hit = 1.0
        for region, members in self.regions.items():
            p_own, reach = shares.p_own, shares.reach
            calm = float(np.prod([1 - p_own[m] for m in members]))
            struck = float(np.prod([1 - p_own[m] * (1 - reach[m]) for m in members]))
            quiet *= 1 - shares.p_region[region] * (1 - calm)
            hit *= 1 - shares.p_region[region] * (1 - struck)
        return (1 - shares.d) * quiet + shares.d * hit

    def best(self, all_down: float, cross: float) -> _Shares:
        """The shares with the mean cross-region correlation ``cross`` and the all-9-down share
        ``all_down``: for a multiplier ``m``, the down share ``d`` on the rising branch (the
        correlation is 0 at ``d = 0`` and ``d = 1``) that gives ``cross``; then ``m`` by
        bisection (in log) on the all-down share, which rises with ``m`` along that curve."""

        def at(multiplier: float) -> tuple[_Shares, bool]:
            grid = [self.shares(multiplier, float(d)) for d in _DOWN_SHARES]
            peak = max(range(len(grid)), key=lambda i: grid[i].cross)
            if grid[peak].cross < cross:
                return grid[peak], False
            low, high = 0.0, float(_DOWN_SHARES[peak])
            for _ in range(14):
                middle = (low + high) / 2
                low, high = (
                    (middle, high)
                    if self.shares(multiplier, middle).cross < cross
                    else (low, middle)
                )
            return self.shares(multiplier, (low + high) / 2), True

        low, high = math.log(_MULTIPLIERS[0]), math.log(_MULTIPLIERS[1])
        for _ in range(12):
            middle = (low + high) / 2
            shares, reached = at(math.exp(middle))
            if not reached or self.all_down(shares) < all_down:
                low = middle
            else:
                high = middle
        return at(math.exp((low + high) / 2))[0]

    def assemble(self, shares: _Shares) -> Calibration:
        d, p_region, p_own = shares.d, shares.p_region, shares.p_own
        global_shock = _with_share(self.tau_h / (1 - d), 1 - d, _GLOBAL_SIGMA)
        regions, zones = {}, {}
        for region, members in self.regions.items():
            regions[region] = _with_share(
                self.region_runs[region].mean_down_h, max(p_region[region], 1e-6)
            )
            for name in members:
                reach = shares.reach[name]
                p = p_own[name]
                multiplier = shares.multiplier
                # Own losses per hour: p_r p_z ((1 - d) + d (1 - rho) m) / U_z.
                own_per_h = (
                    self.losses_per_h[name] - self.available[name] / regions[region].mean_up_h
                )
                weight = p_region[region] * p * ((1 - d) + d * (1 - reach) * multiplier)
                mean_up = weight / own_per_h if own_per_h > 0 else 1e3
                mean_down = mean_up * (1 - p) / p
                # The AZ's own runs keep the spread (log-sd) of its observed runs.
                observed = self.observed[name]
                zones[name] = Runs(
                    mean_up / math.exp(observed.sigma_up**2 / 2),
                    observed.sigma_up,
                    mean_down / math.exp(observed.sigma_down**2 / 2),
                    observed.sigma_down,
                )
        return Calibration(global_shock, regions, zones, shares.multiplier)


def _reach(p_own: float, multiplier: float) -> float:
    """The share of an own process's up time that a loss rate ``multiplier`` times as high
    takes: ``p / (p + m (1 - p)) = p (1 - rho)``."""
    return 1 - 1 / (p_own + multiplier * (1 - p_own))


def _own_share(share: float, multiplier: float, d: float) -> float:
    """The own up share ``p`` with ``p (1 - d rho(p)) = share`` (increasing in ``p``), by
    bisection, at most 0.999."""
    low, high = 0.0, 0.999
    for _ in range(30):
        middle = (low + high) / 2
        if middle * (1 - d * _reach(middle, multiplier)) < share:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _correlation_time_h(
    matrix: NDArray[np.bool_], rows: Mapping[str, list[int]], gap_s: float
) -> float:
    """The lag (h) at which the mean cross-region covariance of the series falls to 1/e of
    its value at lag 0 (ordered pairs of AZs in different regions: the sum over them is the
    total's lagged product less each region's)."""
    centred = matrix - matrix.mean(axis=1, keepdims=True)
    sums = [centred[members].sum(axis=0) for members in rows.values()]
    total = np.sum(sums, axis=0)

    def covariance(lag: int) -> float:
        end = total.size - lag
        value = float(np.dot(total[:end], total[lag:]))
        return value - sum(float(np.dot(s[:end], s[lag:])) for s in sums)

    first = covariance(0)
    for lag in range(1, total.size // 2):
        if covariance(lag) <= first / math.e:
            return float(lag * gap_s / 3600.0)
    return float(total.size * gap_s / 7200.0)


# --- helpers ------------------------------------------------------------------------------


def _with_share(mean_down_h: float, up_share: float, sigma: float = _SHOCK_SIGMA) -> Runs:
    """Shock runs: the mean down run given, the mean up run that makes ``up_share``."""
    mean_up_h = mean_down_h * up_share / max(1 - up_share, 1e-9)
    spread = math.exp(sigma**2 / 2)
    return Runs(mean_up_h / spread, sigma, mean_down_h / spread, sigma)


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
    stress: tuple[list[float], list[float], float] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Down intervals of one alternating process from ``begin`` to ``end`` (seconds); up runs
    divided by ``intensity`` at their start, and run ``m`` times as fast inside the intervals
    of ``stress`` (starts, ends, ``m``)."""
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
            need = ups[position] / max(k, 1e-6)
            t = _advance(t, need, stress) if stress is not None else t + need
        else:
            starts.append(t)
            t += downs[position]
            ends.append(t)
            position += 1
        up = not up
    return np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)


def _advance(t: float, need: float, stress: tuple[list[float], list[float], float]) -> float:
    """The moment an up run from ``t`` ends when it lasts ``need`` seconds at the normal rate
    and runs ``m`` times as fast inside the stress intervals (a loss rate ``m`` times as high:
    the run is measured in operational time)."""
    starts, ends, multiplier = stress
    index = bisect.bisect_right(starts, t) - 1
    while True:
        inside = index >= 0 and t < ends[index]
        if inside:
            rate, until = multiplier, ends[index]
        else:
            rate = 1.0
            until = starts[index + 1] if index + 1 < len(starts) else math.inf
        if need <= (until - t) * rate:
            return t + need / rate
        need -= (until - t) * rate
        t = until
        if not inside:
            index += 1


def _shock(
    runs: Runs, rng: np.random.Generator, begin: float, end: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """A shared shock's down intervals and one uniform draw per interval."""
    starts, ends = _alternate(runs, rng, begin, end)
    return starts, ends, rng.random(starts.size)


#: :func:`fit` of the 2023 p3.2xlarge traces (aws-02-15-2023, 9 AZs; WORLD.md), rounded to 4
#: digits; a test refits them from the traces.
FITTED = Calibration(
    global_shock=Runs(89.89, 0.6, 10.34, 0.6),
    regions={
        "us-east-1": Runs(0.7537, 1.5, 0.3269, 1.5),
        "us-east-2": Runs(3.887, 1.5, 0.6236, 1.5),
        "us-west-2": Runs(13.99, 1.5, 0.2453, 1.5),
    },
    zones={
        "us-east-1a": Runs(0.5532, 1.261, 0.5027, 1.944),
        "us-east-1c": Runs(2.735, 1.491, 0.6362, 1.51),
        "us-east-1d": Runs(4.157, 1.497, 1.241, 1.463),
        "us-east-1f": Runs(240, 1.689, 7.798, 1.526),
        "us-east-2a": Runs(8.754, 1.939, 0.2395, 1.765),
        "us-east-2b": Runs(4.249, 1.654, 0.5059, 1.439),
        "us-west-2a": Runs(5.828, 1.883, 0.3382, 1.23),
        "us-west-2b": Runs(12.18, 2, 0.3566, 1.462),
        "us-west-2c": Runs(5.958, 2, 0.3367, 1.257),
    },
    global_multiplier=112.5,
)
