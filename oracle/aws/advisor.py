"""The Spot Instance Advisor feed: interruption band and savings per (region, type, OS).

The feed is public JSON (the one the Advisor web page reads): ``ranges`` lists the bands
(index, label, max %), ``spot_advisor[region][os][type]`` holds ``r`` (band index) and ``s``
(savings % against on-demand).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from oracle.errors import InputError


@dataclass(frozen=True)
class AdvisorFeed:
    data: dict[str, Any]
    #: When the feed was published (Last-Modified, or the file's modification time): rows are
    #: stamped with it, so re-reading an unchanged feed adds nothing.
    published_at: datetime
    origin: str


@dataclass(frozen=True)
class AdvisorEntry:
    region: str
    instance_type: str
    operating_system: str
    band_index: int
    band_label: str
    band_max_pct: float
    savings_pct: float


def fetch_feed(url: str, *, timeout_s: float = 30.0) -> AdvisorFeed:
    """Download the feed (network errors propagate as ``httpx.HTTPError``)."""
    response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
    response.raise_for_status()
    published_at = datetime.now(UTC).replace(microsecond=0)
    if modified := response.headers.get("last-modified"):
        with contextlib.suppress(TypeError, ValueError):
            published_at = parsedate_to_datetime(modified).astimezone(UTC)
    try:
        data = response.json()
    except ValueError as error:
        raise InputError(f"{url}: the Spot Advisor feed is not JSON ({error})") from None
    _check(data, url)
    return AdvisorFeed(data=data, published_at=published_at, origin=url)


def read_feed(path: Path) -> AdvisorFeed:
    """Read the feed from a file; a bad file raises :class:`InputError` naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: Spot Advisor file not found; check [oracle] advisor_file"
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a Spot Advisor JSON file ({error})") from None
    _check(data, str(path))
    published_at = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
    return AdvisorFeed(data=data, published_at=published_at, origin=str(path))


def entries(
    feed: AdvisorFeed,
    *,
    regions: Collection[str] | None = None,
    instance_types: Collection[str] | None = None,
    operating_system: str = "Linux",
) -> list[AdvisorEntry]:
    """The feed's entries for ``regions`` x ``instance_types`` (None means all; empty, none)."""
    bands = {int(band["index"]): band for band in feed.data["ranges"]}
    found = []
    for region, systems in sorted(feed.data["spot_advisor"].items()):
        if regions is not None and region not in regions:
            continue
        for instance_type, entry in sorted(systems.get(operating_system, {}).items()):
            if instance_types is not None and instance_type not in instance_types:
                continue
            band = bands.get(int(entry["r"]))
            if band is None:
                continue
            found.append(
                AdvisorEntry(
                    region=region,
                    instance_type=instance_type,
                    operating_system=operating_system,
                    band_index=int(entry["r"]),
                    band_label=str(band["label"]),
                    band_max_pct=float(band["max"]),
                    savings_pct=float(entry["s"]),
                )
            )
    return found


def _check(data: Any, origin: str) -> None:
    if not isinstance(data, dict) or not {"ranges", "spot_advisor"} <= data.keys():
        raise InputError(
            f"{origin}: not a Spot Advisor feed (expected the keys 'ranges' and 'spot_advisor')"
        )
