"""The Spot Advisor feed from its URL (a local HTTP server serving the real file) or a file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from oracle.aws.advisor import entries, fetch_feed, read_feed
from oracle.errors import InputError


def test_feed_from_url_is_stamped_with_last_modified(advisor_server: str) -> None:
    feed = fetch_feed(advisor_server)

    assert feed.published_at == datetime(2026, 11, 18, 6, 0, tzinfo=UTC)
    assert feed.origin == advisor_server
    found = entries(feed, regions=["us-east-1"], instance_types=["g5.xlarge", "p3.2xlarge"])
    assert {entry.instance_type for entry in found} == {"g5.xlarge", "p3.2xlarge"}
    for entry in found:
        assert entry.region == "us-east-1"
        assert 0 <= entry.band_index <= 4
        assert entry.band_label in {"<5%", "5-10%", "10-15%", "15-20%", ">20%"}
        assert 0 < entry.savings_pct < 100


def test_feed_entries_match_the_file(shared_data: Path) -> None:
    path = shared_data / "spotinfo-advisor" / "spot-advisor-data.json"
    feed = read_feed(path)
    raw = feed.data["spot_advisor"]["us-east-1"]["Linux"]["g5.xlarge"]

    (entry,) = entries(feed, regions=["us-east-1"], instance_types=["g5.xlarge"])

    assert entry.band_index == raw["r"]
    assert entry.savings_pct == raw["s"]
    assert entry.band_max_pct == {0: 5, 1: 11, 2: 16, 3: 22, 4: 100}[raw["r"]]


def test_missing_url_raises_http_error(advisor_server: str) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        fetch_feed(advisor_server.replace("spot-advisor-data.json", "nothing.json"))


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "not a Spot Advisor JSON file"), ('{"ranges": []}', "expected the keys")],
)
def test_bad_file_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "advisor.json"
    path.write_text(content)

    with pytest.raises(InputError, match=message) as raised:
        read_feed(path)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_none_means_every_entry_and_empty_means_none(shared_data: Path) -> None:
    feed = read_feed(shared_data / "spotinfo-advisor" / "spot-advisor-data.json")

    every = entries(feed, regions=["us-east-1"])

    assert len(every) == len(feed.data["spot_advisor"]["us-east-1"]["Linux"])
    assert entries(feed, regions=["us-east-1"], instance_types=set()) == []
