"""The risk estimator: conjugate posteriors with the Advisor band as the prior."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.risk import (
    Observation,
    RiskPrior,
    Tally,
    advisor_prior,
    estimate_risk,
    posterior_availability,
    posterior_hazard_per_hour,
    summarise,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
POOL = ("us-east-1", "use1-az1", "p3.2xlarge", "spot")

priors = st.builds(
    RiskPrior,
    hazard_per_hour=st.floats(0.0, 5.0),
    availability=st.floats(0.0, 1.0),
    hazard_strength_hours=st.floats(0.1, 5000.0),
    availability_strength_launches=st.floats(0.1, 500.0),
)
counts = st.integers(0, 10_000)
hours = st.floats(0.0, 10_000.0)


def _obs(
    kind: str, *, count: int = 1, at_risk_s: float = 0.0, hours_after: float = 0.0
) -> Observation:
    return Observation(
        *POOL,
        kind=kind,
        observed_at=T0 + timedelta(hours=hours_after),
        count=count,
        at_risk_s=at_risk_s,
    )


@given(priors, counts, hours)
def test_more_losses_never_lower_the_hazard(prior: RiskPrior, losses: int, exposure: float) -> None:
    fewer = posterior_hazard_per_hour(prior, losses=losses, exposure_hours=exposure)
    more = posterior_hazard_per_hour(prior, losses=losses + 1, exposure_hours=exposure)
    assert more > fewer


@given(priors, counts, counts)
def test_more_failures_never_raise_the_availability(prior: RiskPrior, ok: int, failed: int) -> None:
    fewer = posterior_availability(prior, successes=ok, failures=failed)
    more = posterior_availability(prior, successes=ok, failures=failed + 1)
    assert more <= fewer + 1e-12


@given(priors, counts, st.floats(0.01, 10_000.0))
def test_hazard_lies_between_prior_and_mle(prior: RiskPrior, losses: int, exposure: float) -> None:
    posterior = posterior_hazard_per_hour(prior, losses=losses, exposure_hours=exposure)
    mle = losses / exposure
    low, high = sorted((prior.hazard_per_hour, mle))
    assert low * (1 - 1e-9) - 1e-12 <= posterior <= high * (1 + 1e-9) + 1e-12


@given(priors, counts, counts)
def test_availability_lies_between_prior_and_mle(prior: RiskPrior, ok: int, failed: int) -> None:
    posterior = posterior_availability(prior, successes=ok, failures=failed)
    mle = ok / (ok + failed) if ok + failed else prior.availability
    low, high = sorted((prior.availability, mle))
    assert low - 1e-9 <= posterior <= high + 1e-9


@given(st.one_of(st.none(), st.integers(0, 4)))
def test_no_observations_gives_the_prior(band: int | None) -> None:
    prior = advisor_prior(band)
    risk = estimate_risk([], priors={POOL: prior}, as_of=T0, pools=[POOL])[POOL]
    assert risk.hazard_per_hour == pytest.approx(prior.hazard_per_hour)
    assert risk.availability == pytest.approx(prior.availability)
    assert risk.source == "prior"


def test_advisor_prior_orders_bands_and_treats_unknown_as_worst() -> None:
    hazards = [advisor_prior(band).hazard_per_hour for band in range(5)]
    assert hazards == sorted(hazards) and len(set(hazards)) == 5
    assert advisor_prior(None).hazard_per_hour == hazards[4]
    # 10-15% a month, midpoint 12.5% over 730 h.
    assert advisor_prior(2).hazard_per_hour == pytest.approx(0.125 / 730)
    assert 0.999 < advisor_prior(2).availability < 1.0
    on_demand = advisor_prior(None, market="on-demand")
    assert on_demand.hazard_per_hour == 0.0


def test_trace_like_evidence_overrides_the_band() -> None:
    """A pool that loses capacity about once per available hour (the 2023 V100 traces) and is
    found empty half the time is estimated close to that, not to the band."""
    observations = []
    for hour in range(100):
        observations.append(_obs("launch", count=10, at_risk_s=3600.0, hours_after=hour))
        observations.append(_obs("interruption", hours_after=hour + 0.5))
        observations.append(_obs("capacity-error", count=10, hours_after=hour + 0.6))
    risk = estimate_risk(
        observations, priors={POOL: advisor_prior(2)}, as_of=T0 + timedelta(days=10)
    )[POOL]
    # (alpha0 + 100) / (24 + 100) with the prior's day of pseudo-hours.
    assert risk.hazard_per_hour == pytest.approx((0.125 * 24 / 730 + 100) / 124)
    assert risk.availability == pytest.approx(0.5, abs=0.01)
    assert risk.evidence.losses == 100
    assert risk.evidence.observations == 100 * 21
    assert risk.source == "observed (aws)"


def test_no_look_ahead() -> None:
    observations = [_obs("interruption", hours_after=0), _obs("interruption", hours_after=2)]
    prior = advisor_prior(2)
    at_one = estimate_risk(observations, priors={POOL: prior}, as_of=T0 + timedelta(hours=1))[POOL]
    at_three = estimate_risk(observations, priors={POOL: prior}, as_of=T0 + timedelta(hours=3))[
        POOL
    ]
    assert at_one.evidence.losses == 1
    assert at_three.evidence.losses == 2
    assert at_three.hazard_per_hour > at_one.hazard_per_hour
    assert at_one.evidence.last_observed_at == T0


def test_half_life_discounts_old_evidence() -> None:
    observations = [_obs("interruption", hours_after=0)]
    as_of = T0 + timedelta(hours=24)
    plain = estimate_risk(observations, priors={POOL: advisor_prior(2)}, as_of=as_of)[POOL]
    halved = estimate_risk(
        observations, priors={POOL: advisor_prior(2)}, as_of=as_of, half_life_hours=24.0
    )[POOL]
    assert halved.evidence.losses == pytest.approx(0.5)
    assert halved.hazard_per_hour < plain.hazard_per_hour


def test_rebalance_signals_are_counted_but_are_not_losses() -> None:
    risk = estimate_risk([_obs("rebalance", count=3)], priors={POOL: advisor_prior(1)}, as_of=T0)[
        POOL
    ]
    assert risk.evidence.rebalances == 3
    assert risk.hazard_per_hour == pytest.approx(advisor_prior(1).hazard_per_hour)


def test_missing_prior_falls_back_to_the_worst_band() -> None:
    risk = estimate_risk([_obs("launch")], priors={}, as_of=T0)[POOL]
    assert risk.prior == advisor_prior(None)


observations = st.lists(
    st.builds(
        Observation,
        region=st.just("us-east-1"),
        zone=st.sampled_from(["use1-az1", "use1-az2"]),
        instance_type=st.sampled_from(["p3.2xlarge", "g5.xlarge"]),
        market=st.just("spot"),
        kind=st.sampled_from(["interruption", "rebalance", "capacity-error", "launch", "held"]),
        observed_at=st.integers(0, 500).map(lambda h: T0 + timedelta(hours=h)),
        count=st.integers(1, 5),
        at_risk_s=st.floats(0.0, 1e6),
        source=st.sampled_from(["aws", "backtest", "trace"]),
    ),
    max_size=40,
)


@given(observations, st.integers(0, 40))
def test_a_tally_fed_one_at_a_time_sums_as_summarise_does(
    seen: list[Observation], split: int
) -> None:
    """The backtest's running sums (added in two batches, the second on a copy, as a policy
    adds the exposure of what it runs now) equal one summarise of everything."""
    ordered = sorted(seen, key=lambda o: o.observed_at)
    tally = Tally()
    for obs in ordered[:split]:
        tally.add(obs)
    before = tally.evidence()
    later = tally.copy()
    for obs in ordered[split:]:
        later.add(obs)
    assert before == summarise(ordered[:split], as_of=T0 + timedelta(hours=500))
    assert tally.evidence() == before  # the copy left the original as it was
    expected = summarise(ordered, as_of=T0 + timedelta(hours=500))
    assert later.evidence().keys() == expected.keys()
    for pool, evidence in expected.items():
        got = later.evidence()[pool]
        assert got.observations == evidence.observations
        assert got.sources == evidence.sources
        assert got.first_observed_at == evidence.first_observed_at
        assert got.last_observed_at == evidence.last_observed_at
        for name in ("losses", "exposure_hours", "launches_ok", "launch_failures", "rebalances"):
            assert getattr(got, name) == pytest.approx(getattr(evidence, name))
