"""Per-pool risk learned from observations: the hazard and the availability of a spot pool.

A pool is (region, zone, instance type, market). Two quantities are estimated for each:

- the **hazard** ``lambda`` (losses per hour a held instance suffers): the rate of interruption
  notices, or of the pool losing its capacity under a running instance;
- the **availability** ``a`` (the probability that a launch into the pool succeeds now).

Evidence (:class:`Observation`, one row of ``pool_observations`` or one thing a backtest policy
has seen): ``L`` losses over ``T`` hours at risk (the time instances were held, recorded as
``held`` rows when they end, or a trace's available time), ``S`` launches that succeeded (or
probes that found capacity) and ``F`` that failed for capacity (InsufficientInstanceCapacity, or
probes that found none). Rebalance signals are counted and shown but are not losses.

Priors (the Spot Instance Advisor band, :func:`advisor_prior`):

- hazard: ``lambda ~ Gamma(alpha0, beta0)`` with mean ``lambda0 = alpha0 / beta0`` the band's
  monthly interruption share over 730 h (the planner's band midpoints) and strength
  ``beta0 = 24`` pseudo-hours at risk. The band is one region's interruptions of running
  instances over a month, coarsely binned; it says little about capacity churn in one AZ (the
  2023 p3.2xlarge traces lost capacity 2 to 7.5 times a day where the band said 10-15% a
  month), so one day of direct evidence outweighs it: 45 days of the us-east-1a trace (253
  losses over 182 available hours) give 1.23/h against a maximum-likelihood 1.39/h, and a
  quiet pool halves the band's rate after a day held without loss.
- availability: ``a ~ Beta(a0, b0)`` with ``a0 + b0 = n0 = 20`` pseudo-launches and mean
  ``p0 = 1 / (1 + lambda0 * d0)``: the share of time up of a pool that alternates between up
  periods of mean ``1 / lambda0`` and down periods of mean ``d0 = 0.5 h`` (the median down run
  of the 2023 p3.2xlarge traces, 0.38 to 0.70 h, WORLD.md). Twenty launches is about what one
  busy day of replanning tries in a pool; ten straight failures take ``a`` from ~1 to 2/3.

Posteriors (conjugate, so exact), with each observation weighted by ``w = 2^(-age / h)`` when
a half-life ``h`` is given (else ``w = 1``):

- ``lambda | L, T ~ Gamma(alpha0 + L, beta0 + T)``, mean ``(alpha0 + L) / (beta0 + T)``;
- ``a | S, F ~ Beta(a0 + S, b0 + F)``, mean ``(a0 + S) / (n0 + S + F)``.

Each posterior mean is a weighted average of the prior mean and the maximum-likelihood estimate
(``L / T``, ``S / (S + F)``), with weights ``beta0 : T`` and ``n0 : S + F``; so it lies between
the two, equals the prior without evidence, and never falls when a loss (or a failure) is added.

Pure functions: :func:`estimate_risk` takes observations as plain data (the backtest passes what
a policy has seen up to ``as_of``); :mod:`oracle.observations` reads them from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

#: What an observation says about a pool.
OBSERVATION_KINDS = ("interruption", "rebalance", "capacity-error", "launch", "held")
#: Kinds that count as a loss of held capacity (the hazard's numerator).
LOSS_KINDS = frozenset({"interruption"})

#: Spot Instance Advisor band midpoints as monthly interruption shares (">20%": 25%), the
#: same figures the planner prices interruptions with.
BAND_MONTHLY_RATE = (0.025, 0.075, 0.125, 0.175, 0.25)
#: A pool with no band is given the worst band.
UNKNOWN_BAND_INDEX = 4
HOURS_PER_MONTH = 730.0
#: The prior's weight in pseudo-hours at risk (one day; see the module docstring).
HAZARD_PRIOR_HOURS = 24.0
#: The prior's weight in pseudo-launches (see the module docstring).
AVAILABILITY_PRIOR_LAUNCHES = 20.0
#: Mean time a spot pool stays without capacity once lost, in hours (WORLD.md medians).
MEAN_DOWN_HOURS = 0.5
#: On-demand pools: no interruptions; capacity errors are rare but happen.
ON_DEMAND_AVAILABILITY = 0.999

PoolKeyTuple = tuple[str, str, str, str]


@dataclass(frozen=True)
class Observation:
    """``count`` events of ``kind`` in a pool, seen at ``observed_at``.

    ``at_risk_s`` is the time instances were held in the pool that this row accounts for (the
    hazard's exposure); a loss may carry the run time it ended, a ``launch`` row the time the
    capacity then lasted.
    """

    region: str
    zone: str
    instance_type: str
    market: str
    kind: str
    observed_at: datetime
    count: int = 1
    at_risk_s: float = 0.0
    source: str = "aws"

    @property
    def pool(self) -> PoolKeyTuple:
        return (self.region, self.zone, self.instance_type, self.market)


@dataclass(frozen=True)
class RiskPrior:
    """Gamma prior of the hazard and Beta prior of the availability, by mean and strength."""

    hazard_per_hour: float
    availability: float
    hazard_strength_hours: float = HAZARD_PRIOR_HOURS
    availability_strength_launches: float = AVAILABILITY_PRIOR_LAUNCHES
    #: Where the prior came from: "advisor band 10-15%", "no advisor band (worst band)", ...
    source: str = ""


@dataclass(frozen=True)
class Evidence:
    """Observations of one pool summed (weighted by age when a half-life is given)."""

    losses: float = 0.0
    exposure_hours: float = 0.0
    launches_ok: float = 0.0
    launch_failures: float = 0.0
    rebalances: float = 0.0
    observations: int = 0
    first_observed_at: datetime | None = None
    last_observed_at: datetime | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolRisk:
    """The estimate for one pool, with the prior and evidence it came from."""

    pool: PoolKeyTuple
    hazard_per_hour: float
    availability: float
    prior: RiskPrior
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def source(self) -> str:
        """``prior`` when nothing was observed, else ``observed`` and the evidence's sources."""
        if self.evidence.observations == 0:
            return "prior"
        return "observed (" + ", ".join(self.evidence.sources) + ")"


@cache
def advisor_prior(band_index: int | None, *, market: str = "spot") -> RiskPrior:
    """The prior of a pool from its Advisor band (``None``: no band, priced as the worst);
    one immutable answer per band, remembered (a backtest asks for it a million times)."""
    if market != "spot":
        return RiskPrior(0.0, ON_DEMAND_AVAILABILITY, source="on-demand")
    index = UNKNOWN_BAND_INDEX if band_index is None else min(max(band_index, 0), 4)
    hazard = BAND_MONTHLY_RATE[index] / HOURS_PER_MONTH
    source = "no advisor band (worst band)" if band_index is None else f"advisor band {index}"
    return RiskPrior(hazard, 1.0 / (1.0 + hazard * MEAN_DOWN_HOURS), source=source)


def posterior_hazard_per_hour(prior: RiskPrior, *, losses: float, exposure_hours: float) -> float:
    """Gamma-Poisson posterior mean ``(alpha0 + L) / (beta0 + T)``."""
    alpha0 = prior.hazard_per_hour * prior.hazard_strength_hours
    return (alpha0 + losses) / (prior.hazard_strength_hours + exposure_hours)


def posterior_availability(prior: RiskPrior, *, successes: float, failures: float) -> float:
    """Beta-binomial posterior mean ``(a0 + S) / (n0 + S + F)``."""
    a0 = prior.availability * prior.availability_strength_launches
    return (a0 + successes) / (prior.availability_strength_launches + successes + failures)


def summarise(
    observations: Iterable[Observation],
    *,
    as_of: datetime,
    half_life_hours: float | None = None,
) -> dict[PoolKeyTuple, Evidence]:
    """Sum the observations seen at or before ``as_of`` per pool (no look-ahead)."""
    tally = Tally()
    for obs in observations:
        if obs.observed_at > as_of:
            continue
        weight = 1.0
        if half_life_hours is not None:
            age_h = (as_of - obs.observed_at).total_seconds() / 3600.0
            weight = 0.5 ** (age_h / half_life_hours)
        tally.add(obs, weight)
    return tally.evidence()


class Tally:
    """Running sums of observations per pool: :func:`summarise`'s kernel, kept open so that a
    reader that sees observations one at a time (the backtest's policies) adds each once
    instead of summing the whole history again at every decision."""

    def __init__(self) -> None:
        self._sums: dict[PoolKeyTuple, dict[str, float]] = {}
        self._meta: dict[PoolKeyTuple, tuple[int, datetime, datetime, frozenset[str]]] = {}

    def add(self, obs: Observation, weight: float = 1.0) -> None:
        acc = self._sums.setdefault(obs.pool, dict.fromkeys(_FIELDS, 0.0))
        acc["exposure_hours"] += weight * obs.at_risk_s / 3600.0
        if obs.kind in LOSS_KINDS:
            acc["losses"] += weight * obs.count
        elif obs.kind == "rebalance":
            acc["rebalances"] += weight * obs.count
        elif obs.kind == "capacity-error":
            acc["launch_failures"] += weight * obs.count
        elif obs.kind == "launch":
            acc["launches_ok"] += weight * obs.count
        count, first, last, sources = self._meta.get(
            obs.pool, (0, obs.observed_at, obs.observed_at, frozenset())
        )
        self._meta[obs.pool] = (
            count + obs.count,
            min(first, obs.observed_at),
            max(last, obs.observed_at),
            sources if obs.source in sources else sources | {obs.source},
        )

    def copy(self) -> Tally:
        other = Tally()
        other._sums = {pool: dict(acc) for pool, acc in self._sums.items()}
        other._meta = dict(self._meta)
        return other

    def evidence(self) -> dict[PoolKeyTuple, Evidence]:
        out: dict[PoolKeyTuple, Evidence] = {}
        for pool, acc in self._sums.items():
            count, first, last, sources = self._meta[pool]
            out[pool] = Evidence(
                **acc,
                observations=count,
                first_observed_at=first,
                last_observed_at=last,
                sources=tuple(sorted(sources)),
            )
        return out


def estimate_risk(
    observations: Iterable[Observation],
    *,
    priors: Mapping[PoolKeyTuple, RiskPrior] | Callable[[PoolKeyTuple], RiskPrior],
    as_of: datetime,
    pools: Iterable[PoolKeyTuple] = (),
    half_life_hours: float | None = None,
) -> dict[PoolKeyTuple, PoolRisk]:
    """Posterior hazard and availability for every observed pool and every pool in ``pools``.

    ``priors`` maps a pool to its prior (a mapping, or a function; a pool missing from a
    mapping gets the unknown-band prior of its market).
    """
    evidence = summarise(observations, as_of=as_of, half_life_hours=half_life_hours)
    out: dict[PoolKeyTuple, PoolRisk] = {}
    for pool in [*evidence, *pools]:
        if pool in out:
            continue
        prior = _prior_for(priors, pool)
        seen = evidence.get(pool, Evidence())
        out[pool] = PoolRisk(
            pool=pool,
            hazard_per_hour=posterior_hazard_per_hour(
                prior, losses=seen.losses, exposure_hours=seen.exposure_hours
            ),
            availability=posterior_availability(
                prior, successes=seen.launches_ok, failures=seen.launch_failures
            ),
            prior=prior,
            evidence=seen,
        )
    return out


def risk_to_dict(risk: PoolRisk, *, as_of: datetime) -> dict[str, Any]:
    """The JSON shape of one estimate (``scheduler oracle stats --format json``): the
    posterior, its prior, the evidence counts and the age of the newest observation."""
    seen, prior = risk.evidence, risk.prior
    last = seen.last_observed_at
    return {
        "hazard_per_hour": risk.hazard_per_hour,
        "launch_availability": risk.availability,
        "risk_source": risk.source,
        "risk_prior_hazard_per_hour": prior.hazard_per_hour,
        "risk_prior_availability": prior.availability,
        "risk_prior_source": prior.source,
        "risk_observations": seen.observations,
        "risk_losses": seen.losses,
        "risk_exposure_hours": seen.exposure_hours,
        "risk_launches_ok": seen.launches_ok,
        "risk_launch_failures": seen.launch_failures,
        "risk_rebalances": seen.rebalances,
        "risk_first_observed_at": seen.first_observed_at.isoformat()
        if seen.first_observed_at
        else None,
        "risk_last_observed_at": last.isoformat() if last else None,
        "risk_age_s": (as_of - last).total_seconds() if last else None,
    }


#: The keys :func:`risk_to_dict` adds.
RISK_KEYS = frozenset(
    risk_to_dict(PoolRisk(("", "", "", ""), 0.0, 1.0, RiskPrior(0.0, 1.0)), as_of=datetime.now())
)


# --- helpers ------------------------------------------------------------------------------

_FIELDS = ("losses", "exposure_hours", "launches_ok", "launch_failures", "rebalances")


def _prior_for(
    priors: Mapping[PoolKeyTuple, RiskPrior] | Callable[[PoolKeyTuple], RiskPrior],
    pool: PoolKeyTuple,
) -> RiskPrior:
    if callable(priors):
        return priors(pool)
    known = priors.get(pool)
    return known if known is not None else advisor_prior(None, market=pool[3])
