"""The operator's kit: every series the Grafana dashboard and the alerting rules name is one
that /metrics exposes, and the rules parse (promtool when installed, else a schema check)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from scheduler.api.app import app_for
from scheduler.config import ServiceConfig, Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "spot-scheduler.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SERIES = re.compile(r"\bscheduler_[a-z0-9_]+\b")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")
DURATION = re.compile(r"^\d+[smhd]$")


def test_every_series_named_is_exposed(engine: Engine) -> None:
    exposed = _exposed_families(engine)
    named = {name for expr in _dashboard_exprs() + _alert_exprs() for name in SERIES.findall(expr)}
    missing = {name for name in named if _family(name, exposed) is None}
    assert missing == set()
    # The kit covers every family /metrics exposes (a new series gets a panel or a reason).
    assert {_family(name, exposed) for name in named} == exposed


def test_the_dashboard_has_the_panels_an_operator_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert rows == {"Fleet", "Cost", "Interruptions and capacity", "Jobs and the actuator", "API"}
    assert any("SLO headroom" in p["title"] for p in panels)
    assert any("latency" in p["title"] for p in panels)
    for panel in panels:
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["targets"] and all(t["legendFormat"] for t in panel["targets"])
        assert panel["options"]["legend"]["showLegend"] is True
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "service"}


def test_the_alerting_rules_and_the_dashboards_queries_parse(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool:
        # The dashboard's queries too, as recording rules (with its variable filled in).
        # (label_values() is Grafana's, not PromQL: the panels' queries only.)
        queries = [e.replace("$service", "llm") for e in _dashboard_exprs(panels_only=True)]
        recording = {
            "groups": [
                {
                    "name": "dashboard",
                    "rules": [
                        {"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)
                    ],
                }
            ]
        }
        (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(recording))
        done = subprocess.run(
            [promtool, "check", "rules", str(ALERTS), str(tmp_path / "dashboard.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    document = yaml.safe_load(ALERTS.read_text())
    (group,) = document["groups"]
    names = [rule["alert"] for rule in group["rules"]]
    assert {
        "SchedulerSloAtRisk",
        "SchedulerCapacityBelowPlan",
        "SchedulerStalePrices",
        "SchedulerJobFailing",
        "SchedulerApplyStuck",
    } <= set(names)
    assert len(names) == len(set(names))
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        _balanced(rule["expr"], rule["alert"])


def _exposed_families(engine: Engine) -> set[str]:
    settings = Settings(service=ServiceConfig(name="llm-kit"))
    with TestClient(app_for(engine, settings)) as client:
        client.get("/healthz")  # one request timed, so the latency histogram has samples
        text = client.get("/metrics").text
    # The client library also exposes each histogram's creation time as a family of its own.
    families = {family.name for family in text_string_to_metric_families(text)}
    return {name for name in families if not name.endswith("_created")}


def _family(series: str, families: set[str]) -> str | None:
    if series in families:
        return series
    for suffix in SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in families:
            return series.removesuffix(suffix)
    return None


def _dashboard_exprs(*, panels_only: bool = False) -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    if not panels_only:
        exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def _alert_exprs() -> list[str]:
    document: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def _balanced(expr: str, name: str) -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in expr:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"{name}: unbalanced {char!r}"
    assert not stack, f"{name}: unclosed bracket"
