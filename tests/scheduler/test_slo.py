"""SLO strings: the accepted spellings, and a clear error for anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.errors import InputError
from scheduler.slo import parse_slo


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500tok/s", 500.0),
        ("500 tok/s", 500.0),
        ("1.5k tok/s", 1500.0),
        ("1.5ktok/s", 1500.0),
        ("2K tok/s", 2000.0),
        (" 12.5 tokens/s ", 12.5),
        ("0.5M tok/sec", 500_000.0),
    ],
)
def test_accepted_spellings(text: str, expected: float) -> None:
    assert parse_slo(text) == expected


@pytest.mark.parametrize(
    "text", ["abc", "-5tok/s", "0", "0tok/s", "500 req/s", "500", "tok/s", "5e3 tok/s", ""]
)
def test_bad_strings_raise_a_message_with_an_example(text: str) -> None:
    with pytest.raises(InputError, match=r"500tok/s"):
        parse_slo(text)


@given(st.integers(min_value=1, max_value=10**7))
def test_whole_numbers_round_trip(value: int) -> None:
    assert parse_slo(f"{value}tok/s") == value
    assert parse_slo(f"{value} tok/s") == value
