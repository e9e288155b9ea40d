"""Property tests of the parsing layer (no database): what is written is what is read back."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.importers.base import (
    MAX_PRICE_USD_PER_HOUR,
    BadValue,
    FileContext,
    parse_price,
    parse_timestamp,
)
from oracle.importers.detect import detect
from oracle.importers.zones import AZ_ID_PREFIXES, ZoneDirectory
from oracle.models import SpotPriceModel
from oracle.timerange import EARLIEST, LATEST

zone_ids = st.builds(
    lambda prefix, number: f"{prefix}-az{number}",
    st.sampled_from(sorted(AZ_ID_PREFIXES)),
    st.integers(min_value=1, max_value=9),
)
records = st.lists(
    st.tuples(
        st.datetimes(
            min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
        ),
        zone_ids,
        st.sampled_from(["g4dn.xlarge", "p5.48xlarge", "inf2.xlarge", "g6e.12xlarge"]),
        st.sampled_from(["Linux/UNIX", "Windows", "Red Hat Enterprise Linux"]),
        st.decimals(min_value=0, max_value=200, places=4),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(records, st.sampled_from([",", "\t"]))
def test_history_round_trips_through_a_file(
    rows: list[tuple[datetime, str, str, str, object]], delimiter: str
) -> None:
    lines = [delimiter.join(["az_id", "instance_type", "product_description", "spot_price",
                             "timestamp"])]  # fmt: skip
    lines += [
        delimiter.join([zone, kind, product, str(price), when.isoformat()])
        for when, zone, kind, product, price in rows
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "history"
        path.write_text("\n".join(lines) + "\n")
        detected = detect(path)
        batch = detected.format.load(FileContext(path, ZoneDirectory()), detected.payload)
    assert detected.format.kind == "spot_price_history"
    assert batch.rows_read == len(rows)
    stored = batch.rows[SpotPriceModel]
    assert [
        (r["timestamp"], r["zone"], r["instance_type"], r["product_description"]) for r in stored
    ] == [(when, zone, kind, product) for when, zone, kind, product, _ in rows]
    assert [r["price_usd_per_hour"] for r in stored] == [float(p) for *_, p in rows]  # type: ignore[arg-type]
    assert all(r["observed_at"] == r["timestamp"] for r in stored)


@given(
    st.datetimes(timezones=st.sampled_from([UTC, None])),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_timestamps_come_back_as_aware_utc_or_are_refused(when: datetime, offset_min: int) -> None:
    zone = timezone(timedelta(minutes=offset_min)) if when.tzinfo else None
    local = when.replace(tzinfo=zone)
    try:
        parsed = parse_timestamp(local.isoformat())
    except BadValue as error:
        # Only a time outside the supported range is refused, and the message says so.
        assert "is out of range; use a time from 1970-01-01" in str(error)
        assert not EARLIEST <= (local if zone else local.replace(tzinfo=UTC)) < LATEST
        return
    assert parsed.tzinfo is UTC
    assert parsed == (local if zone else local.replace(tzinfo=UTC))
    assert EARLIEST <= parsed < LATEST


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_price_is_a_finite_non_negative_number(value: float) -> None:
    if math.isfinite(value) and 0 <= value <= MAX_PRICE_USD_PER_HOUR:
        assert parse_price(repr(value)) == value
    else:
        with pytest.raises(BadValue):
            parse_price(repr(value))


@given(st.text(alphabet="abcxyz$ -", min_size=1))
def test_words_are_not_prices(text: str) -> None:
    with pytest.raises(BadValue, match="is not a number"):
        parse_price(text)


def test_offsets_are_converted_to_utc() -> None:
    assert parse_timestamp("2021-03-02T03:45:29+02:00") == datetime(
        2021, 3, 2, 1, 45, 29, tzinfo=UTC
    )
    assert parse_timestamp("2021-03-02") - parse_timestamp("2021-03-01") == timedelta(days=1)
