"""best_goodput: measured > imported > reference > estimated, newest first; unusable runs never."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.goodput import GOODPUT_PREFERENCE, best_goodput
from oracle.models import Base, BenchmarkRunModel

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def run(
    instance_type: str,
    source: str,
    tokens_per_second: float,
    days: int,
    *,
    status: str = "complete",
    model: str = "m",
) -> BenchmarkRunModel:
    return BenchmarkRunModel(
        source=source,
        source_detail=f"{source} {tokens_per_second}",
        observed_at=T0 + timedelta(days=days),
        model=model,
        instance_type=instance_type,
        workload_id="w",
        ttft_p95_ms_slo=2000.0,
        tpot_p95_ms_slo=100.0,
        goodput_tokens_per_second=tokens_per_second,
        status=status,
    )


def test_preference_order_and_newest_first(engine: Engine) -> None:
    with transaction(engine) as session:
        session.add_all(
            [
                run("a", "estimated", 900, 9),
                run("a", "reference", 500, 1),
                run("a", "reference", 550, 2),  # newer reference wins among references
                run("b", "estimated", 300, 1),
                run("b", "imported", 250, 0),
                run("b", "measured", 200, -5),  # measured beats newer imported
                run("b", "measured", 210, -9),
                run("c", "measured", 999, 5, status="incomplete"),  # never used
                run("c", "imported", 0.0, 5),  # no goodput: never used
                run("c", "estimated", 120, 0),
                run("d", "measured", 400, 0, model="other"),
            ]
        )
    with transaction(engine) as session:
        facts = best_goodput(session, model="m")
    assert list(facts) == ["a", "b", "c"]
    assert (facts["a"].source, facts["a"].goodput_tokens_per_second) == ("reference", 550)
    assert (facts["b"].source, facts["b"].goodput_tokens_per_second) == ("measured", 200)
    assert (facts["c"].source, facts["c"].goodput_tokens_per_second) == ("estimated", 120)
    assert facts["b"].observed_at == T0 - timedelta(days=5)
    assert facts["b"].run_id > 0 and facts["b"].workload_id == "w"


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(GOODPUT_PREFERENCE), st.integers(0, 30), st.floats(1, 1e4)),
        min_size=1,
        max_size=8,
    )
)
def test_chosen_figure_is_never_beaten(rows: list[tuple[str, int, float]]) -> None:
    # An in-memory database per example (the schema from the models: fast, and the migrated
    # schema is covered by the tests above).
    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with transaction(engine) as session:
        session.add_all([run("x", source, rate, days) for source, days, rate in rows])
    with transaction(engine) as session:
        fact = best_goodput(session, model="m")["x"]
    engine.dispose()
    best_rank = min(GOODPUT_PREFERENCE.index(source) for source, _d, _r in rows)
    assert GOODPUT_PREFERENCE.index(fact.source) == best_rank
    newest = max(d for source, d, _r in rows if GOODPUT_PREFERENCE.index(source) == best_rank)
    assert fact.observed_at == T0 + timedelta(days=newest)
