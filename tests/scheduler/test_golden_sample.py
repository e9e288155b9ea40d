"""The planner's answers and the backtest's figures on the sample market, pinned.

A change that means to leave what the scheduler decides alone (a refactoring, a speed-up) must
leave every figure here as it was: the plans for three SLOs (allocations, costs, baselines,
binding constraints, candidates; not the solve times) and the backtest's per-policy figures in
two simulated worlds (not the planning times). A change that means to move them regenerates
the file and says why in its commit:

    PYTHONPATH=. python -m tests.scheduler.test_golden_sample --write

``tests/scheduler/golden/sample_market.json`` was generated so from commit 327f141 (before the
typed service returns and the command line's start-up work), then regenerated when the
calibrated world's cross-region link, the capacity-mark backoff and the rebalance floor changed
the calibrated backtest's figures on purpose (the plans and the advisor world's figures stayed
as they were).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from oracle import db
from scheduler.backtest.report import to_dict as backtest_document
from scheduler.backtest.service import backtest
from scheduler.config import BacktestConfig, PlannerConfig, Settings
from scheduler.planner import make_plan
from tests.scheduler.backtest.conftest import MODEL, SAMPLE_END, fill_sample

GOLDEN = Path(__file__).parent / "golden" / "sample_market.json"
PLAN_SLOS = (500.0, 2000.0, 8000.0)
BACKTEST_SLO = 2000.0
#: Worlds replayed; ``calibrated`` reads the SkyPilot traces under ../shared (skipped without).
WORLDS = ("advisor", "calibrated")
#: Hourly decisions over the sample's last week keep the replay to a few seconds.
BACKTEST_DAYS = 7
BACKTEST_TICK_S = 3600.0
#: Figures that measure this machine, not the decisions.
TIMINGS = ("timing_s", "solve_s", "planning_s")


def figures(engine: Engine) -> dict[str, Any]:
    """Every pinned figure, as JSON (datetimes in ISO 8601, measured times left out)."""
    settings = Settings(
        planner=PlannerConfig(model=MODEL),
        backtest=BacktestConfig(days=BACKTEST_DAYS, tick_s=BACKTEST_TICK_S),
    )
    document: dict[str, Any] = {"plans": {}, "backtests": {}}
    for slo in PLAN_SLOS:
        plan = make_plan(
            engine,
            config=settings.planner,
            slo_tokens_per_second=slo,
            model=MODEL,
            as_of=SAMPLE_END,
        )
        document["plans"][f"{slo:g}"] = _without_run_moments(_plain(plan.to_dict()))
    for world in WORLDS:
        if world == "calibrated" and not Path(settings.backtest.trace_dir).is_dir():
            continue
        result = backtest(
            engine,
            settings=settings,
            slo_tokens_per_second=BACKTEST_SLO,
            model=MODEL,
            world=world,
        )
        document["backtests"][world] = _plain(backtest_document(result))
    return document


def _plain(document: Any) -> Any:
    """``document`` as JSON would give it back, without the measured times."""
    text = json.dumps(document, default=_default)
    return _drop_timings(json.loads(text))


def _without_run_moments(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan without the moments of facts stored as the test ran (the estimated goodput
    figures are stamped with the time they were made: after ``as_of``, a negative age)."""
    for age in plan["data"]:
        if age["age_hours"] is not None and age["age_hours"] < 0:
            age.update(oldest_observed_at="after as_of", newest_observed_at="after as_of")
            age["age_hours"] = "after as_of"
    return plan


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _drop_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_drop_timings(v) for v in value]
    return value


def _differences(expected: Any, got: Any, where: str = "") -> list[str]:
    """Where ``got`` differs from ``expected``: keys, lengths, strings and integers exactly,
    floats to 1e-9 relative (the last bits of a sum may differ between numpy builds)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        if list(expected) != list(got):
            return [f"{where or '/'}: keys {list(expected)} != {list(got)}"]
        return [d for k in expected for d in _differences(expected[k], got[k], f"{where}/{k}")]
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [f"{where}: {len(expected)} items != {len(got)}"]
        return [d for i, pair in enumerate(zip(expected, got, strict=True))
                for d in _differences(*pair, f"{where}/{i}")]  # fmt: skip
    both_float = isinstance(expected, float) and isinstance(got, float)
    if both_float and math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-12):
        return []
    if type(expected) is type(got) and expected == got:
        return []
    return [f"{where}: {expected!r} != {got!r}"]


@pytest.fixture(scope="module")
def sample_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path = tmp_path_factory.mktemp("golden") / "sample.sqlite3"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    fill_sample(engine)
    return engine


def test_plans_and_backtest_figures_are_those_pinned(sample_engine: Engine) -> None:
    golden = json.loads(GOLDEN.read_text())
    got = figures(sample_engine)
    if set(got["backtests"]) != set(golden["backtests"]):  # no traces here: compare the rest
        golden["backtests"] = {
            k: v for k, v in golden["backtests"].items() if k in got["backtests"]
        }
    assert got["plans"] and got["backtests"]
    assert _differences(golden, got) == []


def test_the_comparison_catches_a_moved_figure() -> None:
    """The check above can fail: a cost moved in its tenth digit, a key renamed, a count."""
    pinned = {"cost_usd": 1.25, "launches": 3, "pool": "a"}
    assert _differences(pinned, {**pinned, "cost_usd": 1.25 * (1 + 1e-12)}) == []
    assert _differences(pinned, {**pinned, "cost_usd": 1.25 * (1 + 1e-8)}) != []
    assert _differences(pinned, {**pinned, "launches": 4}) != []
    assert _differences(pinned, {"cost": 1.25, "launches": 3, "pool": "a"}) != []


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate the pinned sample-market figures.")
    parser.add_argument("--write", action="store_true", help=f"write {GOLDEN}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        engine = db.make_engine(f"sqlite:///{Path(directory) / 'sample.sqlite3'}")
        db.upgrade(engine)
        fill_sample(engine)
        text = json.dumps(figures(engine), indent=1) + "\n"
        engine.dispose()
    if args.write:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
