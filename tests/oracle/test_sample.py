"""The embedded sample market: catalog facts, determinism, realism, and its ingest."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from oracle import db, store
from oracle.errors import InputError
from oracle.models import (
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    SpotPriceModel,
)
from oracle.sample import catalog, generator, ingest_sample
from oracle.sample.ingest import spot_rows
from oracle.stats import pool_stats

END = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)
START = END - timedelta(days=90)


def _histories(
    pools: list[catalog.SamplePool],
    *,
    seed: int = 2026,
    start: datetime = START,
    end: datetime = END,
) -> list[generator.PoolHistory]:
    return list(generator.spot_histories(pools, seed=seed, start=start, end=end))


# --- catalog --------------------------------------------------------------------------------


def test_catalog_holds_specs_prices_and_zones_for_every_type() -> None:
    assert set(catalog.instance_type_names()) <= set(catalog.INSTANCE_TYPES)
    assert len(catalog.instance_type_names()) >= 30
    assert {"us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1"} <= set(catalog.region_names())
    for pool in catalog.pools():
        # AZ IDs and names belong to the pool's region (use1-az4 is us-east-1's).
        assert pool.availability_zone.startswith(pool.region)
        assert catalog.AZ_NAMES[pool.availability_zone_id] == pool.availability_zone
    h100 = catalog.INSTANCE_TYPES["p5.48xlarge"]
    assert (h100.accelerator_name, h100.accelerator_count, h100.vcpus) == ("H100", 8, 192)
    assert h100.accelerator_memory_mib_each == 81920


def test_june_2025_p_family_price_cut() -> None:
    assert catalog.on_demand_timeline("p5.48xlarge", "us-east-1") == [
        (catalog.LIST_PRICES_SINCE, 98.32),
        (datetime(2025, 6, 1, tzinfo=UTC), 55.04),
    ]
    assert (
        catalog.on_demand_price("p5.48xlarge", "us-east-1", datetime(2025, 5, 31, tzinfo=UTC))
        == 98.32
    )
    p4d_before, p4d_after = (
        price for _, price in catalog.on_demand_timeline("p4d.24xlarge", "us-east-1")
    )
    assert p4d_after == pytest.approx(p4d_before * 0.67, abs=1e-4)
    # The G family had no cut.
    assert len(catalog.on_demand_timeline("g5.xlarge", "us-east-1")) == 1


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match=r"unknown region 'mars-east-1'.*us-east-1"):
        catalog.pools(regions=["mars-east-1"])
    with pytest.raises(InputError, match=r"unknown instance type 'g9\.huge'"):
        catalog.pools(instance_types=["g9.huge"])


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    pools = catalog.pools(regions=["us-east-1", "eu-west-1"])
    first = list(spot_rows(_histories(pools), seed=2026))
    again = list(spot_rows(_histories(pools), seed=2026))
    other = list(spot_rows(_histories(pools, seed=7), seed=7))
    assert first == again
    assert [r["price_usd_per_hour"] for r in first] != [r["price_usd_per_hour"] for r in other][
        : len(first)
    ]


def test_overlapping_windows_agree_where_they_overlap() -> None:
    pools = catalog.pools(regions=["us-west-2"])
    early = _histories(pools, start=START, end=END)
    late = _histories(pools, start=START + timedelta(days=30), end=END + timedelta(days=10))
    for a, b in zip(early, late, strict=True):
        lo, hi = (START + timedelta(days=30)).timestamp(), END.timestamp()
        in_a = {t: p for t, p in zip(a.times_s, a.prices_usd_per_hour, strict=True) if lo < t <= hi}
        in_b = {t: p for t, p in zip(b.times_s, b.prices_usd_per_hour, strict=True) if lo < t <= hi}
        assert in_a == in_b


# --- realism --------------------------------------------------------------------------------


def test_realism_invariants_over_every_pool() -> None:
    histories = _histories(catalog.pools())
    fractions: dict[str, list[float]] = defaultdict(list)
    near_on_demand = 0
    for history in histories:
        pool = history.pool
        times, prices = history.times_s, history.prices_usd_per_hour
        # A price at every moment of the window: the first record is at or before its start.
        assert times[0] <= START.timestamp()
        assert np.all(times[1:] > START.timestamp())
        assert np.all(np.diff(times) > 0)
        assert times[-1] <= END.timestamp()
        on_demand = np.array(
            [
                catalog.on_demand_price(
                    pool.instance_type, pool.region, datetime.fromtimestamp(t, UTC)
                )
                for t in times
            ]
        )
        assert np.all(prices <= on_demand)
        assert np.all(prices > 0)
        ratio = prices / on_demand
        near_on_demand += int(np.sum(ratio > 0.85))
        fractions[catalog.family(pool.instance_type)].append(float(np.median(ratio)))
        # A few changes a day or fewer.
        assert (times.size - 1) / 90 < 8
    for family, medians in fractions.items():
        # Typical discounts of 55-75% below on-demand, by family.
        assert 0.22 <= float(np.median(medians)) <= 0.48, family
    assert near_on_demand > 0  # spikes to on-demand happen


def test_azs_of_a_region_are_dispersed() -> None:
    histories = _histories(catalog.pools(regions=["us-east-1"], instance_types=["g5.xlarge"]))
    means = [float(np.mean(h.prices_usd_per_hour)) for h in histories]
    assert len(means) >= 4
    assert max(means) / min(means) > 1.05


def test_spot_follows_the_p5_cut() -> None:
    pools = catalog.pools(regions=["us-east-1"], instance_types=["p5.48xlarge"])
    cut = datetime(2025, 6, 1, tzinfo=UTC)
    for history in _histories(pools, start=cut - timedelta(days=30), end=cut + timedelta(days=30)):
        after = history.times_s >= cut.timestamp()
        assert history.times_s[after][0] == cut.timestamp()  # re-priced at the cut
        assert history.prices_usd_per_hour[after].max() <= 55.04
        assert history.prices_usd_per_hour[~after].max() <= 98.32


def test_placement_scores_and_advisor_bands() -> None:
    pools = catalog.pools(regions=["us-east-1", "ap-south-1"])
    scores = list(
        generator.placement_samples(
            pools, seed=1, start=START, end=END, target_capacities=(1, 4, 16)
        )
    )
    assert {s.score for s in scores} <= set(range(1, 11))
    assert min(s.observed_at for s in scores) <= START
    assert {s.availability_zone_id for s in scores} >= {None, "use1-az4"}
    by_capacity = defaultdict(list)
    for s in scores:
        by_capacity[s.target_capacity].append(s.score)
    assert np.mean(by_capacity[16]) < np.mean(by_capacity[1])  # large requests score lower
    advice = list(generator.advisor_samples(pools, seed=1, start=START, end=END))
    assert {a.band_index for a in advice} <= set(range(5))
    assert all(45 <= a.savings_pct <= 85 for a in advice)


# --- ingest, on SQLite and PostgreSQL -------------------------------------------------------


def test_ingest_is_idempotent_and_all_sample(engine: sa.Engine) -> None:
    progress: list[tuple[str, int]] = []
    kwargs = {
        "seed": 11,
        "days": 20,
        "end": END,
        "regions": ["us-east-1", "eu-west-1"],
        "instance_types": ["g5.xlarge", "p5.48xlarge"],
    }
    counts = ingest_sample(engine, on_progress=lambda r, n: progress.append((r, n)), **kwargs)
    assert all(counts[table] > 0 for table in counts)
    assert [region for region, _ in progress] == ["eu-west-1", "us-east-1"]
    assert sum(n for _, n in progress) == counts["spot_prices"]
    again = ingest_sample(engine, **kwargs)
    assert again == {table: 0 for table in counts}
    # A later window adds only what is new.
    later = ingest_sample(engine, **{**kwargs, "end": END + timedelta(days=2), "days": 22})
    assert 0 < later["spot_prices"] < counts["spot_prices"]
    with db.transaction(engine) as session:
        for model in (
            SpotPriceModel,
            OnDemandPriceModel,
            PlacementScoreModel,
            InterruptionFrequencyModel,
            InstanceTypeModel,
        ):
            sources = set(session.scalars(sa.select(model.source).distinct()))
            assert sources == {"sample"}, model
        stats = pool_stats(session, as_of=END)
    assert {s.instance_type for s in stats} == {"g5.xlarge", "p5.48xlarge"}
    for s in stats:
        assert s.price_source == "sample"
        assert s.on_demand_price_usd_per_hour is not None
        assert s.current_price_usd_per_hour is not None
        assert s.max_price_usd_per_hour_90d <= s.on_demand_price_usd_per_hour  # type: ignore[operator]
        assert set(s.placement_scores) == {1, 4, 16}
        assert s.interruption_band_label is not None


def test_ingest_refuses_bad_arguments_and_writes_nothing(engine: sa.Engine) -> None:
    with pytest.raises(InputError, match="--days"):
        ingest_sample(engine, seed=1, days=0, end=END)
    with pytest.raises(InputError, match="unknown region"):
        ingest_sample(engine, seed=1, end=END, regions=["us-east-1", "nowhere-1"])
    with pytest.raises(InputError, match="time zone"):
        ingest_sample(engine, seed=1, end=datetime(2026, 1, 1), regions=["us-east-1"])
    with db.transaction(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(SpotPriceModel)) == 0


# --- the bulk write path that large ingests like the sample's take --------------------------


def _price_rows(count: int, *, offset_s: int = 0, with_detail: bool = True) -> list[dict[str, Any]]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        moment = base + timedelta(seconds=offset_s + 60 * i)
        minute = offset_s // 60 + i
        row = {
            "source": "aws",
            "observed_at": moment,
            "region": "us-east-1",
            "zone": f"use1-az{minute % 3 + 1}",
            "availability_zone": None,
            "availability_zone_id": f"use1-az{minute % 3 + 1}",
            "instance_type": "g5.xlarge",
            "product_description": "Linux/UNIX",
            "timestamp": moment,
            "price_usd_per_hour": 0.3 + (i % 7) / 100,
        }
        if with_detail:
            row["source_detail"] = f"row {i}"
        rows.append(row)
    return rows


def _stored(engine: sa.Engine) -> list[tuple[Any, ...]]:
    """Every stored row as the database holds it (datetimes as text, as SQL compares them)."""
    table = SpotPriceModel.__table__
    columns = [sa.cast(c, sa.Text) for c in table.columns if c.name != "id"]
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(sa.select(*columns).order_by(*columns))]


def test_bulk_path_counts_exactly_and_stores_what_the_statement_path_stores(
    backend: str, make_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = store.BULK_MIN_ROWS + 500
    first = _price_rows(count)
    # Half of these are stored already, and some repeat within the batch.
    second = _price_rows(count, offset_s=60 * (count // 2))
    second += second[:700]

    def run(url: str) -> tuple[int, int, int]:
        engine = db.make_engine(url)
        with db.transaction(engine) as session:
            a = store.insert_ignore(session, SpotPriceModel, first)
        with db.transaction(engine) as session:
            b = store.insert_ignore(session, SpotPriceModel, second)
        with db.transaction(engine) as session:
            c = store.insert_ignore(session, SpotPriceModel, first)
        engine.dispose()
        return a, b, c

    bulk_url = make_database(backend)
    assert run(bulk_url) == (count, count - count // 2, 0)
    monkeypatch.setattr(store, "BULK_MIN_ROWS", 10**9)  # the statement path only
    statement_url = make_database(backend)
    assert run(statement_url) == (count, count - count // 2, 0)
    bulk_engine, statement_engine = db.make_engine(bulk_url), db.make_engine(statement_url)
    assert _stored(bulk_engine) == _stored(statement_engine)
    bulk_engine.dispose()
    statement_engine.dispose()


def test_bulk_path_applies_defaults_and_rolls_back(engine: sa.Engine) -> None:
    rows = _price_rows(store.BULK_MIN_ROWS, with_detail=False)
    with pytest.raises(RuntimeError), db.transaction(engine) as session:
        assert store.insert_ignore(session, SpotPriceModel, rows) == len(rows)
        raise RuntimeError("abort the ingest")
    assert _stored(engine) == []
    with db.transaction(engine) as session:
        assert store.insert_ignore(session, SpotPriceModel, rows) == len(rows)
    with db.transaction(engine) as session:
        details = set(session.scalars(sa.select(SpotPriceModel.source_detail).distinct()))
        stamps = session.scalars(
            sa.select(SpotPriceModel.timestamp).order_by(SpotPriceModel.timestamp).limit(1)
        ).all()
    assert details == {""}  # the column's default, as the statement path gives it
    assert stamps[0].tzinfo is not None
    assert stamps[0] == min(row["timestamp"] for row in rows)
