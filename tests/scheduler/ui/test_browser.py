"""The dashboard in a real browser (headless Chromium): every page against a service on moto
and the sample market. Each page's figures equal the API's, no console errors, every chart
draws its traces; screenshots at 1280x800 and at a phone's size are saved under the test's
temporary folder (``pytest --basetemp DIR`` keeps them where you can look)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler.backtest.report import CHARTS
from scheduler.ui.render import number, usd
from tests.scheduler.fleet_helpers import interruption
from tests.scheduler.ui.conftest import TOKEN, LiveService

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
PAGES = ("fleet", "savings", "market", "interruptions", "backtests")


def test_every_page_shows_the_apis_figures(make_service: Any, browser: Any, tmp_path: Path) -> None:
    service: LiveService = make_service()
    fleet = service.get("/fleet")
    assert fleet and {r["state"] for r in fleet} == {"READY"}
    spot = next(r for r in fleet if r["market"] == "spot")
    notice = httpx.post(
        f"{service.url}/events/ec2",
        json=interruption(spot["instance_id"], "e-ui-1"),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert notice.status_code == 200, notice.text
    shots = tmp_path / "screenshots"
    shots.mkdir()
    for name, (width, height) in VIEWPORTS.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        errors = _errors_of(page)
        for path in PAGES:
            response = page.goto(f"{service.url}/ui/{path}")
            assert response is not None and response.status == 200, path
            _charts_drawn(page)
            CHECKS[path](page, service)
            page.screenshot(path=str(shots / f"{path}-{name}.png"), full_page=True)
            assert not errors, (path, name, errors)
        context.close()
    assert len(list(shots.glob("*.png"))) == len(PAGES) * len(VIEWPORTS)


def test_private_reads_need_the_token_and_the_form_asks_for_it(
    make_service: Any, browser: Any, tmp_path: Path
) -> None:
    service: LiveService = make_service(private_reads=True)
    assert httpx.get(f"{service.url}/ui/market").status_code == 401
    assert httpx.get(f"{service.url}/savings").json()["code"] == "unauthorized"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = _errors_of(page)
    response = page.goto(f"{service.url}/ui/backtests")
    assert response is not None and response.status == 401
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    assert page.locator("#signin-error").is_visible()
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{service.url}/ui/backtests")
    assert page.locator("#no-reports").is_visible()

    # The run form: refused without the token (the sign-in cookie is not enough) ...
    page.fill("input[name=slo]", "1000tok/s")
    page.fill("#run-form input[name=token]", "wrong")
    page.click("#run-form button[type=submit]")
    assert page.locator("#form-error").inner_text() == "wrong or missing API token"
    assert service.get("/backtests") == []
    # ... and run with it: the replay runs after the response, the page lists it when done.
    page.fill("input[name=slo]", "1000tok/s")
    page.fill("input[name=days]", "1")
    page.fill("#run-form input[name=token]", TOKEN)
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/backtests\?started=backtest-.*"))
    deadline = time.monotonic() + 180
    while service.get("/backtests")[0]["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    (report,) = service.get("/backtests")
    assert report["status"] == "done", report
    page.goto(f"{service.url}/ui/backtests")
    row = page.locator(f"#reports tr[data-name='{report['name']}']")
    planner = report["policies"]["planner"]
    assert usd(planner["cost_usd"]) in row.inner_text()
    with page.expect_navigation():
        row.locator("a").click()
    page.wait_for_load_state("load")
    assert page.title().startswith("Backtest of ")
    assert page.locator("img").count() == len(CHARTS)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    # The refusals above are answered 401 on purpose (Chromium logs each), and the report's
    # own page, written by `scheduler backtest --report`, names no icon (so /favicon.ico 404s).
    refused = [e for e in errors if "status of 401 (Unauthorized)" in e]
    no_icon = [e for e in errors if "status of 404" in e and e.endswith("/favicon.ico]")]
    assert len(refused) == 3 and len(refused) + len(no_icon) == len(errors), errors
    context.close()


# --- per page: the figures shown against the API's ---------------------------------------


def _fleet(page: Any, service: LiveService) -> None:
    replicas = service.get("/fleet")
    assert page.locator("#replicas-count").inner_text() == (
        f"{sum(r['state'] == 'READY' for r in replicas)} / {len(replicas)}"
    )
    for replica in replicas:
        row = page.locator(f"#replicas tr[data-id='{replica['id']}']")
        assert _cell(row, "price_usd_per_hour") == usd(replica["price_usd_per_hour"], 4)
        assert _cell(row, "tokens_per_second") == number(replica["tokens_per_second"])
    # The interruption made a fallback plan; it is the plan in force.
    in_force = service.get("/savings")["plans"][-1]
    plan = service.get(f"/plans/{in_force['id']}")
    assert plan["origin"] == "fallback" and plan["applied_at"] is not None
    assert page.locator("#plan-cost").inner_text() == f"{usd(plan['cost_usd_per_hour'])}/h"
    assert f"A fallback of plan {service.plan_id}" in page.locator("#fallback").inner_text()
    first = service.get(f"/plans/{service.plan_id}")["document"]
    assert f"{usd(first['cost_usd_per_hour'])}/h" in page.locator("#plan-summary").inner_text()
    counts = [a["count"] for a in plan["allocations"]]
    shown = page.locator("#allocations td[data-field='count']").all_inner_texts()
    assert shown == [str(c) for c in counts]
    actions = service.get("/actions", limit=20)
    assert page.locator("#journal tbody tr").count() == len(actions)
    assert page.locator("#sample-banner").is_visible()


def _savings(page: Any, service: LiveService) -> None:
    figures = service.get("/savings")
    for plan in figures["plans"]:
        row = page.locator(f"#plans tr[data-id='{plan['id']}']").inner_text()
        assert usd(plan["cost_usd_per_hour"]) in row
        assert usd(plan["on_demand_usd_per_hour"]) in row
    # The cumulative figures grow by the second: the page's lag behind the API is bounded by
    # the fleet's rate over the seconds between the two reads.
    rate = figures["points"][-1]["actual_usd_per_hour"]
    shown = _dollars(page.locator("#actual-usd").inner_text())
    assert abs(shown - figures["actual_usd"]) <= rate * 60 / 3600 + 0.005
    recommended = service.get("/recommendations", slo="1000tok/s")
    assert f"{usd(recommended['cost_usd_per_hour'])}/h" in page.locator("#projected").inner_text()


def _market(page: Any, service: LiveService) -> None:
    region = page.locator("select[name=region]").input_value()
    instance_type = page.locator("select[name=instance_type]").input_value()
    market = service.get("/market", region=region, instance_type=instance_type)
    assert market["spot"], "the explorer opens on a pool with prices"
    for series in market["spot"]:
        row = page.locator(f"#zones tr[data-zone='{series['zone']}']")
        assert _cell(row, "price_now") == usd(series["prices_usd_per_hour"][-1], 4)
    candidates = service.get("/recommendations", slo="1000tok/s")["candidates"]
    expected = sorted(
        c["expected_cost_usd_per_hour_each"] / c["tokens_per_second_each"] * 1000
        for c in candidates
        if c["region"] == region
    )[:20]
    shown = page.locator("#ranking td[data-field='per_1k']").all_inner_texts()
    assert shown == [usd(value, 3) for value in expected]


def _interruptions(page: Any, service: LiveService) -> None:
    counts = service.get("/interruptions")["counts"]
    assert counts.get("interruption") == 1
    for kind in ("interruption", "rebalance", "capacity-error"):
        shown = page.locator(f"[data-count='{kind}']").inner_text()
        assert shown == str(counts.get(kind, 0))


def _backtests(page: Any, service: LiveService) -> None:
    assert service.get("/backtests") == []
    assert page.locator("#no-reports").is_visible()
    assert page.locator("#run-form input[name=token]").count() == 1


CHECKS = {
    "fleet": _fleet,
    "savings": _savings,
    "market": _market,
    "interruptions": _interruptions,
    "backtests": _backtests,
}


def _charts_drawn(page: Any) -> None:
    """Every chart was drawn by Plotly with at least one trace that has marks in its SVG."""
    charts = page.locator("[data-figure]")
    for index in range(charts.count()):
        chart = charts.nth(index)
        chart_id = chart.get_attribute("id")
        page.wait_for_selector(f"#{chart_id}[data-rendered='true']", timeout=30_000)
        marks = page.locator(
            f"#{chart_id} .main-svg .scatterlayer .trace path, #{chart_id} .main-svg .barlayer path"
        )
        assert marks.count() > 0, chart_id
        assert page.locator(f"#{chart_id} .legend .traces").count() > 0, chart_id
        assert page.locator(f"#{chart_id} .xtitle").text_content(), chart_id


def _errors_of(page: Any) -> list[str]:
    """Console errors and uncaught exceptions of ``page``, as they come."""
    errors: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            errors.append(f"{message.text} [{message.location.get('url', '')}]")

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return errors


def _cell(row: Any, field: str) -> str:
    return str(row.locator(f"td[data-field='{field}']").inner_text())


def _dollars(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
