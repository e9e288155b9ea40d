"""Backtest reports on disk: list those already written, and write a new one.

A report is a directory holding ``index.html`` (and its PNG charts), as ``scheduler backtest
--report DIR`` writes it, directly in ``service.reports_dir`` or one level below it. A report
started from the dashboard also holds ``status.json`` (running, done or failed) and, once done,
``result.json`` (the JSON of ``scheduler backtest --format json``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from scheduler.config import Settings

#: Files of a report the dashboard serves (nothing else under the directory is reachable).
SERVED = re.compile(r"^(index\.html|result\.json|status\.json|[a-z0-9_]+\.png)$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def reports_dir(settings: Settings) -> Path:
    return Path(settings.service.reports_dir).expanduser()


def list_reports(directory: Path) -> list[dict[str, Any]]:
    """Every report under ``directory``, newest first, with its title and, when known, status
    and per-policy results."""
    if not directory.is_dir():
        return []
    found = [directory, *sorted(p for p in directory.iterdir() if p.is_dir())]
    reports = [_describe(path, directory) for path in found if _is_report(path)]
    return sorted(reports, key=lambda r: r["written_at"], reverse=True)


def report_file(directory: Path, name: str, file: str) -> Path | None:
    """The path of one served file of a report, or ``None`` when there is no such file (names
    outside the report's own files are refused, so nothing else on disk can be read)."""
    if not SERVED.match(file) or not (name == "." or _NAME.match(name)) or name == "..":
        return None
    path = (directory / name / file) if name != "." else directory / file
    return path if path.is_file() else None


def start_report(directory: Path, *, now: datetime | None = None) -> str:
    """Make the directory of a new report, marked running; return its name."""
    now = now or datetime.now(UTC)
    name = f"backtest-{now:%Y%m%dT%H%M%S}-{now.microsecond:06d}"
    path = directory / name
    path.mkdir(parents=True, exist_ok=False)
    _write_status(path, {"status": "running", "started_at": now.isoformat()})
    return name


def run_report(
    engine: Engine,
    settings: Settings,
    directory: Path,
    name: str,
    *,
    slo_tokens_per_second: float,
    days: int,
    policies: list[str],
    tick_s: float,
) -> None:
    """Replay the last ``days`` of the oracle's history and write the report into ``name``
    (meant to run after the response: errors are written to its status, not raised)."""
    from scheduler.backtest import report
    from scheduler.backtest.service import backtest

    path = directory / name
    started = json.loads((path / "status.json").read_text())
    # The window: the last ``days`` of the history the oracle holds (the service's default);
    # one process (the server runs threads: it does not fork).
    window = settings.backtest.model_copy(update={"days": days, "processes": 1})
    try:
        result = backtest(
            engine,
            settings=settings.model_copy(update={"backtest": window}),
            slo_tokens_per_second=slo_tokens_per_second,
            tick_s=tick_s,
            policies=policies,
        )
        report.write_report(result, path)
        (path / "result.json").write_text(json.dumps(report.to_dict(result), default=str))
        _write_status(path, {**started, "status": "done", "finished_at": _now()})
    except Exception as error:  # shown on the page; the service keeps serving
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        _write_status(
            path, {**started, "status": "failed", "error": message, "finished_at": _now()}
        )


def _is_report(path: Path) -> bool:
    return (path / "index.html").is_file() or (path / "status.json").is_file()


def _describe(path: Path, root: Path) -> dict[str, Any]:
    name = "." if path == root else path.name
    status: dict[str, Any] = {"status": "done"}
    if (path / "status.json").is_file():
        status = json.loads((path / "status.json").read_text())
    index = path / "index.html"
    marker = index if index.is_file() else path / "status.json"
    title = name
    if index.is_file():
        match = re.search(r"<title>(.*?)</title>", index.read_text(errors="replace"), re.S)
        title = match.group(1).strip() if match else name
    policies = None
    if (path / "result.json").is_file():
        policies = json.loads((path / "result.json").read_text()).get("policies")
    return {
        "name": name,
        "title": title,
        "written_at": datetime.fromtimestamp(marker.stat().st_mtime, UTC),
        "status": status.get("status", "done"),
        "error": status.get("error"),
        "has_index": index.is_file(),
        "policies": policies,
    }


def _write_status(path: Path, status: dict[str, Any]) -> None:
    temporary = path / "status.json.tmp"
    temporary.write_text(json.dumps(status))
    temporary.replace(path / "status.json")


def _now() -> str:
    return datetime.now(UTC).isoformat()
