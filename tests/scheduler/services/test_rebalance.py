"""The rebalancer's decision: thresholds, dwell time and the cap on actions per run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduler.actuator.types import Action, Pool
from scheduler.config import JobsConfig
from scheduler.jobs.load import follow_load
from scheduler.services.rebalance import decide

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
POOL = Pool("us-east-1", "use1-az1", "g5.xlarge", "spot")


def _actions(launches: int, terminations: int) -> list[Action]:
    return [Action("launch", POOL, "r") for _ in range(launches)] + [
        Action("terminate", POOL, "r", replica_id=i + 1) for i in range(terminations)
    ]


@given(
    launches=st.integers(0, 6),
    terminations=st.integers(0, 6),
    ages_s=st.lists(st.integers(0, 7200), min_size=6, max_size=6),
    cap=st.integers(1, 8),
    current=st.floats(0, 50),
    planned=st.floats(0, 50),
)
def test_decisions_respect_thresholds_dwell_and_cap(
    launches: int,
    terminations: int,
    ages_s: list[int],
    cap: int,
    current: float,
    planned: float,
) -> None:
    config = JobsConfig(
        rebalance_max_actions=cap,
        rebalance_min_dwell_s=3600.0,
        rebalance_min_saving_pct=10.0,
        rebalance_min_saving_usd_per_hour=0.5,
    )
    launched_at = {i + 1: NOW - timedelta(seconds=age) for i, age in enumerate(ages_s)}
    decision = decide(
        config,
        actions=_actions(launches, terminations),
        current_usd_per_hour=current,
        planned_usd_per_hour=planned,
        launched_at=launched_at,
        now=NOW,
    )
    if decision.act:
        assert current - planned >= 0.5 and (current - planned) / current >= 0.10
    assert len(decision.launches) + len(decision.terminations) <= cap
    for action in decision.terminations:
        assert action.replica_id is not None
        assert NOW - launched_at[action.replica_id] >= timedelta(seconds=3600)


def test_a_changed_slo_acts_without_a_saving() -> None:
    decision = decide(
        JobsConfig(),
        actions=_actions(2, 0),
        current_usd_per_hour=1.0,
        planned_usd_per_hour=2.0,
        launched_at={},
        now=NOW,
        slo_changed=True,
    )
    assert decision.act and len(decision.launches) == 2


def test_load_following_waits_for_the_delays() -> None:
    config = JobsConfig(
        load_headroom_fraction=0.25,
        scale_up_delay_s=60.0,
        scale_down_delay_s=600.0,
        load_min_tokens_per_second=100.0,
    )
    state: dict[str, float] = {}
    slo = 500.0
    # 800 tok/s generated -> target 1000 tok/s; only acted on after 60 s above the SLO.
    readings = [(0.0, 0.0), (10.0, 8000.0), (40.0, 32000.0), (80.0, 64000.0)]
    decisions = []
    for at_s, total in readings:
        decision = follow_load(config, current_slo=slo, tokens_total=total, now_s=at_s, state=state)
        state = decision.state
        decisions.append(decision)
    assert [d.changed for d in decisions] == [False, False, False, True]
    assert decisions[-1].slo_tokens_per_second == 1000.0
    # Idle: the target is the minimum, but scaling down waits 600 s.
    idle = follow_load(config, current_slo=1000.0, tokens_total=64000.0, now_s=90.0, state=state)
    assert not idle.changed and idle.state["target_tokens_per_second"] == 100.0


def test_the_generated_token_counter_is_read_from_replica_metrics() -> None:
    import httpx

    from bench.fakeserver import FakeServer, FakeServerConfig
    from scheduler.jobs.load import scrape_generated_tokens

    with (
        FakeServer(FakeServerConfig(model="m", ttft_s=0.0, gap_s=0.0)) as one,
        FakeServer(FakeServerConfig(model="m", ttft_s=0.0, gap_s=0.0)) as two,
    ):
        before = scrape_generated_tokens([one.url, two.url, "http://127.0.0.1:9"])
        for server, tokens in ((one, 5), (two, 7)):
            httpx.post(
                f"{server.url}/v1/completions",
                json={"model": "m", "prompt": "hi", "max_tokens": tokens, "ignore_eos": True},
                timeout=10,
            ).raise_for_status()
        after = scrape_generated_tokens([one.url, two.url, "http://127.0.0.1:9"])
    assert after - before == 12
