"""A small sample market (two regions, four GPU types, two weeks) with goodput figures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from oracle import db
from oracle.goodput import GoodputFact, best_goodput
from oracle.reference import ensure_goodput_figures
from oracle.sample import ingest_sample
from scheduler.backtest.market import MarketHistory

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
SAMPLE_END = datetime(2026, 3, 1, tzinfo=UTC)
SAMPLE_DAYS = 14
REGIONS = ("us-east-1", "us-west-2")
TYPES = ("g5.xlarge", "g6.xlarge", "g6e.xlarge", "g5.12xlarge")


def fill_sample(engine: Engine, *, seed: int = 11) -> None:
    ingest_sample(
        engine,
        seed=seed,
        days=SAMPLE_DAYS,
        end=SAMPLE_END,
        regions=REGIONS,
        instance_types=TYPES,
    )
    ensure_goodput_figures(engine, model=MODEL)


def goodput_of(engine: Engine) -> dict[str, GoodputFact]:
    with db.session_factory(engine)() as session:
        return best_goodput(session, model=MODEL)


@pytest.fixture(scope="module")
def sample_market(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[MarketHistory, dict[str, GoodputFact], Engine]:
    """The sample market on SQLite, loaded once per module (the simulation does not touch the
    database; the database tests run on both backends separately)."""
    path = tmp_path_factory.mktemp("backtest") / "sample.sqlite3"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    fill_sample(engine)
    return MarketHistory.load(engine), goodput_of(engine), engine
