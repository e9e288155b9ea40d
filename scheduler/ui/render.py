"""Templates, number formats and chart embedding shared by the pages.

The formats are the ones the browser tests compare the API's figures against: change both
together.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from scheduler.timeparse import format_age

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def usd(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    sign = "-" if value < 0 and round(value, digits) != 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def usd_total(value: float | None) -> str:
    """A sum of money: cents, or hundredths of a cent below a dollar (a fleet's first hour)."""
    return usd(value, 4 if value is not None and abs(value) < 1 else 2)


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def age(moment: datetime | str | None, now: datetime | None = None) -> str:
    """A short age: 45s, 12m, 3.5h, 4.2d (``-`` when unknown)."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    elapsed = (now or datetime.now(UTC)) - moment
    return "in the future" if elapsed.total_seconds() < 0 else format_age(elapsed)


def when(moment: datetime | str | None) -> str:
    if moment is None:
        return "-"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def figure_json(figure: dict[str, Any]) -> str:
    """The figure as JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(figure, default=_plain, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, values, status_code=status)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


templates.env.filters.update(
    usd=usd,
    usd_total=usd_total,
    number=number,
    percent=percent,
    age=age,
    when=when,
    figure_json=figure_json,
)
